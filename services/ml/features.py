"""The fraud model's features: one definition for training (``generator``) and scoring (FDS).

The FDS computes ``Aggregates`` once per transaction (velocity counters, amount history, known
devices; Redis or in-process) before its engines run; the rule engine and the ML engine both
read them. The training generator computes the same aggregates over its simulated history, so a
model trained here sees at scoring time exactly the features it was trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

# Windows of the velocity aggregates (seconds).
USER_WINDOW = 3600
CARD_WINDOW = 600
IP_WINDOW = 3600
DEVICE_WINDOW = 3600
SMALL_AMOUNT_KRW = 5_000.0

FEATURES = (
    "amount_log",          # log1p(amount in KRW)
    "amount_ratio_log",    # log(amount / user's mean amount before this one), 0 without history
    "history_log",         # log1p(user's previous transactions)
    "user_velocity",       # user's transactions in the last hour, this one included
    "card_velocity",       # this card's transactions in the last 10 minutes
    "ip_velocity",         # this IP's transactions in the last hour
    "device_velocity",     # this device's transactions in the last hour
    "small_amount",        # 1 if under 5,000 KRW (card-testing probes are small)
    "new_device",          # 1 if the user has not used this device before
    "country_mismatch",    # 1 if billing and shipping countries differ
    "is_card",             # 1 if paid by card
    "hour_sin",            # time of day, cyclic
    "hour_cos",
)


@dataclass(frozen=True)
class Aggregates:
    user_velocity: int = 1
    card_velocity: int = 1
    ip_velocity: int = 1
    device_velocity: int = 1
    history_count: int = 0
    history_sum_krw: float = 0.0
    new_device: bool = False

    @property
    def history_mean_krw(self) -> float | None:
        return self.history_sum_krw / self.history_count if self.history_count else None


def vector(amount_krw: float, payment_method: str, billing_country: str, shipping_country: str,
           created_at: datetime, agg: Aggregates) -> list[float]:
    """The feature vector, in ``FEATURES`` order."""
    mean = agg.history_mean_krw
    ratio = math.log(max(amount_krw, 1.0) / max(mean, 1.0)) if mean else 0.0
    hour = created_at.hour + created_at.minute / 60
    return [
        math.log1p(max(amount_krw, 0.0)),
        ratio,
        math.log1p(agg.history_count),
        float(agg.user_velocity),
        float(agg.card_velocity),
        float(agg.ip_velocity),
        float(agg.device_velocity),
        1.0 if amount_krw < SMALL_AMOUNT_KRW else 0.0,
        1.0 if agg.new_device else 0.0,
        1.0 if billing_country.upper() != shipping_country.upper() else 0.0,
        1.0 if payment_method == "card" else 0.0,
        math.sin(2 * math.pi * hour / 24),
        math.cos(2 * math.pi * hour / 24),
    ]
