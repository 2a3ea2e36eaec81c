"""The generator: deterministic, exact counts, each fraud pattern with its documented signature,
and aggregates equal to a brute-force recount with the FDS window semantics."""

from __future__ import annotations

import itertools
import math
import statistics
from collections import defaultdict

import pytest

from services.ml.features import CARD_WINDOW, DEVICE_WINDOW, IP_WINDOW, SMALL_AMOUNT_KRW, USER_WINDOW, vector
from services.ml.generator import GeneratedTxn, generate, training_set
from services.ml.scenarios import PATTERNS


@pytest.fixture(scope="module")
def txns() -> list[GeneratedTxn]:
    return generate(20_000, 0.05, 7)


def by_pattern(txns: list[GeneratedTxn], pattern: str) -> list[GeneratedTxn]:
    found = [t for t in txns if t.pattern == pattern]
    assert found, pattern
    return found


def test_same_seed_same_transactions_other_seed_others() -> None:
    assert generate(2_000, 0.05, 3) == generate(2_000, 0.05, 3)
    assert [t.transaction_id for t in generate(2_000, 0.05, 4)] != [t.transaction_id for t in generate(2_000, 0.05, 3)]


def test_counts_order_and_every_pattern(txns: list[GeneratedTxn]) -> None:
    assert len(txns) == 20_000
    assert sum(t.is_fraud for t in txns) == 1_000
    assert {t.pattern for t in txns} == set(PATTERNS)
    assert all(t.is_fraud == (t.pattern != "normal") for t in txns)
    assert all(a.created_at <= b.created_at for a, b in itertools.pairwise(txns))
    assert len({t.transaction_id for t in txns}) == len(txns)


def test_small_sets_still_get_every_pattern() -> None:
    assert {t.pattern for t in generate(1_000, 0.005, 1)} == set(PATTERNS)


def test_card_testing_is_small_amounts_in_card_bursts(txns: list[GeneratedTxn]) -> None:
    probes = by_pattern(txns, "card_testing")
    assert all(t.amount_krw < SMALL_AMOUNT_KRW and t.payment_method == "card" for t in probes)
    per_card = defaultdict(list)
    for t in probes:
        per_card[(t.card_bin, t.card_last4)].append(t)
    # Probes are at most 60 s apart, so any 10 in a row fit in the 10-minute card window.
    for burst in per_card.values():
        assert all(t.aggregates.card_velocity >= min(i, 10) for i, t in enumerate(burst, 1))
    assert statistics.median(t.aggregates.card_velocity for t in by_pattern(txns, "normal")) == 1


def test_account_takeover_is_new_device_abroad_far_above_the_mean(txns: list[GeneratedTxn]) -> None:
    takeovers = by_pattern(txns, "account_takeover")
    own_devices = {(t.user_id, t.device_id) for t in txns if t.pattern == "normal"}
    assert all(t.aggregates.history_count >= 1 for t in takeovers)  # a real account with history
    assert all(t.billing_country != t.shipping_country for t in takeovers)
    assert all((t.user_id, t.device_id) not in own_devices for t in takeovers)
    first_use = {}
    for t in takeovers:
        first_use.setdefault((t.user_id, t.device_id), t)
    assert all(t.aggregates.new_device for t in first_use.values())
    # 6-25x the shopper's mean; measured against the legitimate purchases before it (noisy).
    ratios = [t.amount_krw / _normal_mean_before(txns, t) for t in takeovers]
    assert sum(r >= 3 for r in ratios) >= 0.9 * len(ratios)
    assert statistics.median(ratios) >= 5


def test_high_value_outlier_is_far_above_anything_normal(txns: list[GeneratedTxn]) -> None:
    outliers = by_pattern(txns, "high_value_outlier")
    assert all(t.amount_krw >= 1_500_000 for t in outliers)
    known = [t for t in outliers if t.aggregates.history_count > 0]
    assert known and len(known) < len(outliers)  # both variants: known accounts and fresh ones
    ratios = [t.features[1] for t in known]  # amount_ratio_log against the account's history
    assert sum(r > math.log(3) for r in ratios) >= 0.9 * len(ratios)
    assert statistics.median(ratios) > math.log(10)


def test_bot_velocity_is_one_device_and_ip_across_many_accounts(txns: list[GeneratedTxn]) -> None:
    bots = by_pattern(txns, "bot_velocity")
    users_per_device = defaultdict(set)
    for t in bots:
        users_per_device[(t.device_id, t.ip_address)].add(t.user_id)
    shared = sum(len(users_per_device[(t.device_id, t.ip_address)]) >= 3 for t in bots)
    assert shared >= 0.9 * len(bots)  # only a quota-cut last episode may be smaller
    assert statistics.median(t.aggregates.device_velocity for t in bots) >= 5
    assert statistics.median(t.aggregates.ip_velocity for t in bots) >= 5
    assert statistics.median(t.aggregates.user_velocity for t in bots) <= 2


def test_stolen_card_is_one_card_across_many_ips_and_devices(txns: list[GeneratedTxn]) -> None:
    stolen = by_pattern(txns, "stolen_card")
    per_card = defaultdict(list)
    for t in stolen:
        per_card[(t.card_bin, t.card_last4)].append(t)
    assert max(len({t.ip_address for t in uses}) for uses in per_card.values()) >= 4
    assert all(len({t.device_id for t in uses}) == len(uses) for uses in per_card.values())
    assert statistics.median(t.aggregates.card_velocity for t in stolen) >= 2
    assert all(t.amount_krw >= SMALL_AMOUNT_KRW for t in stolen)


def test_normal_shoppers_look_ordinary(txns: list[GeneratedTxn]) -> None:
    normal = by_pattern(txns, "normal")
    mismatch = sum(t.billing_country != t.shipping_country for t in normal) / len(normal)
    assert mismatch < 0.05
    assert statistics.median(t.aggregates.user_velocity for t in normal) <= 2
    assert {t.currency for t in normal} >= {"KRW", "USD"}
    assert statistics.median(t.amount_krw for t in normal) > SMALL_AMOUNT_KRW


def test_aggregates_equal_a_brute_force_recount() -> None:
    txns = generate(1_500, 0.1, 11)
    windows = {"user_velocity": (USER_WINDOW, lambda t: t.user_id),
               "card_velocity": (CARD_WINDOW, lambda t: (t.card_bin, t.card_last4) if t.card_bin else None),
               "ip_velocity": (IP_WINDOW, lambda t: t.ip_address),
               "device_velocity": (DEVICE_WINDOW, lambda t: t.device_id)}
    for i, txn in enumerate(txns):
        before = txns[:i]
        for name, (window, key) in windows.items():
            k = key(txn)
            expected = 1 if k is None else 1 + sum(
                1 for p in before if key(p) == k and (txn.created_at - p.created_at).total_seconds() < window)
            assert getattr(txn.aggregates, name) == expected, (i, name)
        history = [p for p in before if p.user_id == txn.user_id]
        assert txn.aggregates.history_count == len(history)
        assert txn.aggregates.history_sum_krw == pytest.approx(sum(p.amount_krw for p in history))
        assert txn.aggregates.new_device == all(p.device_id != txn.device_id for p in history)
        assert list(txn.features) == vector(txn.amount_krw, txn.payment_method, txn.billing_country,
                                            txn.shipping_country, txn.created_at, txn.aggregates)


def test_training_set_is_the_generated_features() -> None:
    X, y = training_set(2_000, 0.05, 5)
    txns = generate(2_000, 0.05, 5)
    assert X.shape == (2_000, len(txns[0].features))
    assert [list(row) for row in X] == [list(t.features) for t in txns]
    assert list(y) == [int(t.is_fraud) for t in txns]


def _normal_mean_before(txns: list[GeneratedTxn], txn: GeneratedTxn) -> float:
    amounts = [t.amount_krw for t in txns
               if t.user_id == txn.user_id and t.pattern == "normal" and t.created_at < txn.created_at]
    return sum(amounts) / len(amounts)


def test_transaction_body_is_the_fds_contract(txns: list[GeneratedTxn]) -> None:
    body = by_pattern(txns, "stolen_card")[0].transaction()
    assert set(body) == {"transaction_id", "order_id", "user_id", "amount", "currency", "payment_method",
                         "card_bin", "card_last4", "ip_address", "device_id", "email", "billing_country",
                         "shipping_country", "created_at"}
    assert len(body["card_bin"]) == 6 and len(body["card_last4"]) == 4
    assert body["amount"] > 0 and body["created_at"].endswith("+00:00")


@pytest.mark.parametrize("n, rate", [(-1, 0.05), (100, 1.5), (100, -0.1)])
def test_bad_arguments_are_rejected(n: int, rate: float) -> None:
    with pytest.raises(ValueError):
        generate(n, rate, 1)
