"""Amounts, currencies and payment cards: validated at the edge, stored as BIN + last 4 only."""

from __future__ import annotations

import random

from otel_setup.scrub import luhn_ok

CURRENCIES = ("KRW", "USD", "EUR", "JPY", "GBP", "CNY")
# Rates to KRW for the amount counters (the seed counts revenue in KRW); fixed for a demo shop.
KRW_RATE = {"KRW": 1.0, "USD": 1350.0, "EUR": 1450.0, "JPY": 9.0, "GBP": 1700.0, "CNY": 185.0}
MAX_AMOUNT = 1_000_000_000.0


def to_krw(amount: float, currency: str) -> float:
    return amount * KRW_RATE[currency]


def valid_card(number: str) -> bool:
    digits = number.replace(" ", "").replace("-", "")
    return digits.isdigit() and 12 <= len(digits) <= 19 and luhn_ok(digits)


def card_parts(number: str) -> tuple[str, str]:
    """(BIN, last 4): all that is ever kept of a card number."""
    digits = number.replace(" ", "").replace("-", "")
    return digits[:6], digits[-4:]


def demo_card(prefix: str = "4", rng: random.Random | None = None) -> str:
    """A 16-digit number that passes Luhn, for demo traffic and tests (never a real card's)."""
    rng = rng or random.Random()
    digits = [int(c) for c in prefix] + [rng.randrange(10) for _ in range(15 - len(prefix))]
    total = 0
    for i, d in enumerate(reversed(digits)):
        d = d * 2 if i % 2 == 0 else d  # doubled from the right, the check digit still to come
        total += d - 9 if d > 9 else d
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)
