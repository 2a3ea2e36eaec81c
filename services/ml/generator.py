"""The project's labeled transaction generator: normal shoppers plus documented fraud patterns.

    from services.ml.generator import generate, training_set

    txns = generate(20_000, fraud_rate=0.05, seed=7)   # list[GeneratedTxn], in time order
    txns[0].transaction()                               # the FDS ``Transaction`` JSON body
    X, y = training_set(20_000, 0.05, 7)                # features (FEATURES order) and labels

The same seed gives the same transactions, ids included. Normal behaviour is described in
``population``, the fraud patterns (``card_testing``, ``account_takeover``, ``high_value_outlier``,
``bot_velocity``, ``stolen_card``) in ``scenarios``; a legitimate purchase that looks unusual (big
first purchase, big-ticket buy, new device, gift abroad, travel) carries its ``unusual`` tag.

Aggregates are computed the way the FDS computes them live (``services.ml.features``), replayed
over the simulated clock in time order: sliding windows that include the transaction itself
(user 1 h, card = BIN + last 4 10 min, IP 1 h, device 1 h; an event leaves the window when it is
``window`` seconds old), the user's count and KRW sum *before* the transaction, and ``new_device``
when the user has not used the device before (a first purchase is on a new device). A transaction
without a card counts 1 on the card window, as the FDS does with no card key.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from services.common.money import to_krw

from .features import CARD_WINDOW, DEVICE_WINDOW, FEATURES, IP_WINDOW, USER_WINDOW, Aggregates, vector
from .population import Draft, Ids, big_first_purchases, in_currency, make_shoppers, normal_drafts
from .scenarios import World, fraud_drafts

DEFAULT_START = datetime(2026, 11, 2, tzinfo=UTC)
PURCHASES_PER_SHOPPER = 8  # over the simulated days: a few purchases a day
BIG_FIRST_SHARE = 0.04  # shoppers whose first purchase is a big one
SIMULATED_DAYS = 3.0


@dataclass(frozen=True, slots=True)
class GeneratedTxn:
    transaction_id: str
    order_id: str
    user_id: str
    amount: float
    currency: str
    payment_method: str
    card_bin: str | None
    card_last4: str | None
    ip_address: str
    device_id: str | None
    email: str
    billing_country: str
    shipping_country: str
    created_at: datetime
    aggregates: Aggregates
    features: tuple[float, ...]
    is_fraud: bool
    pattern: str
    unusual: str = ""  # a legitimate purchase that looks unusual: population.UNUSUAL

    @property
    def amount_krw(self) -> float:
        return to_krw(self.amount, self.currency)

    def transaction(self) -> dict[str, Any]:
        """The FDS ``Transaction`` body (docs/services.md), JSON-ready."""
        return {
            "transaction_id": self.transaction_id, "order_id": self.order_id, "user_id": self.user_id,
            "amount": self.amount, "currency": self.currency, "payment_method": self.payment_method,
            "card_bin": self.card_bin, "card_last4": self.card_last4, "ip_address": self.ip_address,
            "device_id": self.device_id, "email": self.email, "billing_country": self.billing_country,
            "shipping_country": self.shipping_country, "created_at": self.created_at.isoformat(),
        }


def generate(n: int, fraud_rate: float, seed: int, *, start: datetime = DEFAULT_START) -> list[GeneratedTxn]:
    """``n`` transactions, ``round(n * fraud_rate)`` of them fraudulent, sorted by ``created_at``."""
    return list(_replay(_drafts(n, fraud_rate, seed), start))


def training_set(n: int, fraud_rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (n x len(FEATURES), float64) and ``y`` (n, int: 1 = fraud): ``generate``'s features."""
    X = np.empty((n, len(FEATURES)), dtype=np.float64)
    y = np.empty(n, dtype=np.int64)
    # Streamed: a large set never holds all its transactions at once.
    for i, txn in enumerate(_replay(_drafts(n, fraud_rate, seed), DEFAULT_START)):
        X[i] = txn.features
        y[i] = txn.is_fraud
    return X, y


def _drafts(n: int, fraud_rate: float, seed: int) -> list[Draft]:
    if n < 0 or not 0.0 <= fraud_rate <= 1.0:
        raise ValueError("n must be >= 0 and fraud_rate within [0, 1]")
    ids = Ids(random.Random(seed))
    n_fraud = round(n * fraud_rate)
    n_normal = n - n_fraud
    shoppers = make_shoppers(ids, max(10, n_normal // PURCHASES_PER_SHOPPER))
    drafts = normal_drafts(ids, shoppers, n_normal, SIMULATED_DAYS, seq0=0)
    world = World(ids, SIMULATED_DAYS, shoppers)
    world.seq = n_normal
    drafts.extend(fraud_drafts(world, n_fraud))
    drafts.sort(key=lambda d: (d.t, d.seq))
    big_first_purchases(ids, drafts, BIG_FIRST_SHARE)
    return drafts


class _Windows:
    """Sliding-window event counts per key, with the FDS cache's semantics (``hit_window``)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.events: dict[str, deque[float]] = {}

    def hit(self, key: str, now: float) -> int:
        events = self.events.setdefault(key, deque())
        events.append(now)
        while events[0] <= now - self.window:
            events.popleft()
        return len(events)


def _replay(drafts: list[Draft], start: datetime) -> Iterator[GeneratedTxn]:
    users, cards, ips, devices = (_Windows(USER_WINDOW), _Windows(CARD_WINDOW), _Windows(IP_WINDOW),
                                  _Windows(DEVICE_WINDOW))
    history: dict[str, tuple[int, float]] = {}
    known_devices: dict[str, set[str]] = {}
    for d in drafts:
        amount = in_currency(d.amount_krw, d.currency)
        amount_krw = to_krw(amount, d.currency)
        count, total = history.get(d.user_id, (0, 0.0))
        history[d.user_id] = (count + 1, total + amount_krw)
        seen = known_devices.setdefault(d.user_id, set())
        new_device = d.device_id not in seen
        seen.add(d.device_id)
        agg = Aggregates(
            user_velocity=users.hit(d.user_id, d.t),
            card_velocity=cards.hit(f"{d.card[0]}{d.card[1]}", d.t) if d.card else 1,
            ip_velocity=ips.hit(d.ip_address, d.t),
            device_velocity=devices.hit(d.device_id, d.t),
            history_count=count, history_sum_krw=total, new_device=new_device,
        )
        created_at = start + timedelta(seconds=d.t)
        features = vector(amount_krw, d.payment_method, d.billing_country, d.shipping_country, created_at, agg)
        yield GeneratedTxn(
            transaction_id=d.transaction_id, order_id=d.order_id, user_id=d.user_id, amount=amount,
            currency=d.currency, payment_method=d.payment_method,
            card_bin=d.card[0] if d.card else None, card_last4=d.card[1] if d.card else None,
            ip_address=d.ip_address, device_id=d.device_id, email=d.email, billing_country=d.billing_country,
            shipping_country=d.shipping_country, created_at=created_at, aggregates=agg,
            features=tuple(features), is_fraud=d.is_fraud, pattern=d.pattern, unusual=d.unusual,
        )
