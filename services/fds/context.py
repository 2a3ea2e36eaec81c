"""The aggregates step: what every engine needs beyond the transaction itself.

Before the engines run, one cache batch (one Redis round trip) records this transaction and
reads back its history, with the windows of ``services.ml.features`` so that
the ML engine sees the features its model was trained on:

- velocity: events in the window for the user, the card (BIN + last 4), the IP and the device;
- card testing: small-amount events on the card in the card window (counted for small ones only);
- amount history: the user's count and sum of KRW amounts *before* this transaction;
- devices: whether the user has used this device before.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.cache import Cache, HitWindow, Observe, Op, Remember
from services.common.money import to_krw
from services.ml import features
from services.ml.features import Aggregates

from .schemas import Transaction

# Connections the app opens at start (one batch per evaluation; concurrent evaluations share them).
AGGREGATE_CALLS = 7


@dataclass(frozen=True)
class Context:
    txn: Transaction
    amount_krw: float
    aggregates: Aggregates
    card_small_velocity: int = 0
    # False when the cache did not answer in time: engines then see a first-time transaction.
    aggregates_ok: bool = True

    @property
    def amount_ratio(self) -> float:
        """Amount over the user's mean before it; 0 without history."""
        mean = self.aggregates.history_mean_krw
        return self.amount_krw / mean if mean else 0.0

    def feature_vector(self) -> list[float]:
        t = self.txn
        return features.vector(self.amount_krw, t.payment_method, t.billing_country, t.shipping_country,
                               t.created_at, self.aggregates)


def card_key(txn: Transaction) -> str | None:
    # Only BIN + last 4 ever reach the FDS; together they identify a card well enough for velocity.
    return f"{txn.card_bin}:{txn.card_last4}" if txn.card_bin and txn.card_last4 else None


def bare_context(txn: Transaction) -> Context:
    """The context when the aggregates step failed: this transaction alone, no history."""
    return Context(txn, to_krw(txn.amount, txn.currency), Aggregates(), aggregates_ok=False)


async def collect(txn: Transaction, cache: Cache, history_ttl: float) -> Context:
    amount_krw = to_krw(txn.amount, txn.currency)
    card = card_key(txn)
    small = amount_krw < features.SMALL_AMOUNT_KRW
    # One batch (one Redis round trip): the windows, the amount history, the device set.
    windows = [("user", txn.user_id, features.USER_WINDOW), ("card", card, features.CARD_WINDOW),
               ("ip", str(txn.ip_address), features.IP_WINDOW), ("device", txn.device_id, features.DEVICE_WINDOW),
               ("card_small", card if small else None, features.CARD_WINDOW)]
    ops: list[Op] = [HitWindow(f"fds:v:{kind}:{key}", window) for kind, key, window in windows if key is not None]
    ops.append(Observe(f"fds:history:{txn.user_id}", amount_krw, history_ttl))
    if txn.device_id is not None:
        ops.append(Remember(f"fds:devices:{txn.user_id}", txn.device_id, history_ttl))
    replies = iter(await cache.batch(ops))
    # Nothing to correlate on (no card, no device): this transaction is the only one.
    user_v, card_v, ip_v, device_v, small_v = (next(replies) if key is not None else (0 if kind == "card_small" else 1)
                                               for kind, key, _ in windows)
    count, total = next(replies)
    is_new = next(replies) if txn.device_id is not None else False
    aggregates = Aggregates(user_velocity=user_v, card_velocity=card_v, ip_velocity=ip_v,
                            device_velocity=device_v, history_count=count, history_sum_krw=total,
                            new_device=is_new)
    return Context(txn, amount_krw, aggregates, card_small_velocity=small_v)
