"""The documented fraud patterns of the generator: one function per named scenario.

Each scenario produces *episodes* (a burst of related fraudulent transactions) until its quota is
met; the signature it leaves in the features is what the tests check and what the FDS rules and the
model learn:

``card_testing``
    A fresh account tries a stolen card with 6-20 small amounts (500-4,900 KRW) 5-60 s apart, at
    night in Seoul, from one device and one hosting IP. Signature: ``small_amount`` = 1 and a rising
    ``card_velocity`` (and ``user_velocity``).
``account_takeover``
    Someone logs into an existing shopper's account from a new device on a foreign hosting IP and
    buys 1-3 items at 6-25x the shopper's usual amount, shipped abroad with the home billing
    country. Signature: ``new_device`` = 1, ``country_mismatch`` = 1, high ``amount_ratio_log``.
``high_value_outlier``
    One purchase far above normal: either an existing account spending 15-60x its mean (at least
    1.5 M KRW) from its usual device, or a fresh account's first purchase of 2-15 M KRW.
    Signature: ``amount_krw`` >= 1.5 M with a high ratio or no history.
``bot_velocity``
    One device on one hosting IP drives 8-25 fresh accounts through 1-2 purchases each, 20-150 s
    apart (scalping, promotion abuse). Signature: high ``ip_velocity`` and ``device_velocity``,
    ``new_device`` = 1, no history.
``stolen_card``
    One card is used 4-10 times within minutes by different accounts on different devices and
    IPs for 150-900 k KRW. Signature: high ``card_velocity`` with distinct IPs and devices.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .population import CURRENCY_OF, DAY, FOREIGN_COUNTRIES, Draft, Ids, Shopper

# Share of the fraudulent transactions that each pattern contributes.
WEIGHTS = {"card_testing": 0.25, "account_takeover": 0.2, "high_value_outlier": 0.15,
           "bot_velocity": 0.2, "stolen_card": 0.2}
PATTERNS = ("normal", *WEIGHTS)


class World:
    """What an episode may draw on: the random stream, the span of time and the shoppers."""

    def __init__(self, ids: Ids, days: float, shoppers: list[Shopper]) -> None:
        self.ids = ids
        self.rng = ids.rng
        self.days = days
        self.end = days * DAY
        self.shoppers = shoppers
        self.seq = 0
        self.victims: set[str] = set()

    def draft(self, pattern: str, t: float, user: tuple[str, str], amount_krw: float, method: str,
              card: tuple[str, str] | None, ip: str, device: str, billing: str, shipping: str,
              currency: str = "KRW") -> Draft:
        self.seq += 1
        return Draft(
            seq=self.seq, t=t, transaction_id=self.ids.uuid(), order_id=self.ids.uuid(), user_id=user[0],
            email=user[1], amount_krw=amount_krw, currency=currency, payment_method=method, card=card,
            ip_address=ip, device_id=device, billing_country=billing, shipping_country=shipping,
            is_fraud=True, pattern=pattern,
        )

    def fresh_user(self, disposable: float = 0.5) -> tuple[str, str]:
        return self.ids.uuid(), self.ids.email(disposable=self.rng.random() < disposable)

    def victim(self, margin: float = 3600.0) -> tuple[Shopper, float] | None:
        """A shopper with a purchase before some moment, and that moment (so history exists).

        Each shopper is a victim once: an earlier fraud in the history would distort the mean
        that the next pattern's signature is measured against.
        """
        for _ in range(20):
            s = self.rng.choice(self.shoppers)
            if s.user_id not in self.victims and s.first_t + margin < self.end:
                self.victims.add(s.user_id)
                return s, self.rng.uniform(s.first_t + margin, self.end)
        return None


def card_testing(w: World) -> list[Draft]:
    r, ids = w.rng, w.ids
    user, card, device, ip = w.fresh_user(), ids.stolen_card(), ids.device(), ids.ip("HOSTING")
    # 0-6 h KST is 15-21 h UTC of the previous day.
    t = r.randrange(max(1, int(w.days))) * DAY + r.uniform(15, 21) * 3600.0
    out = []
    for _ in range(r.randint(6, 20)):
        amount = float(r.randrange(5, 50) * 100)
        out.append(w.draft("card_testing", t, user, amount, "card", card, ip, device, "KR", "KR"))
        t += r.uniform(5, 60)
    return out


def account_takeover(w: World) -> list[Draft]:
    found = w.victim()
    if found is None:
        return high_value_outlier(w)
    s, t = found
    r, ids = w.rng, w.ids
    device, ip = ids.device(), ids.ip("HOSTING")
    shipping = r.choice([c for c in FOREIGN_COUNTRIES if c != s.country])
    card = r.choice(s.cards)
    out = []
    for _ in range(r.randint(1, 3)):
        amount = s.mean_krw * r.uniform(6, 25)
        out.append(w.draft("account_takeover", t, (s.user_id, s.email), amount, "card", card, ip, device,
                           s.country, shipping, CURRENCY_OF[s.country]))
        t += r.uniform(60, 900)
    return out


def high_value_outlier(w: World) -> list[Draft]:
    r, ids = w.rng, w.ids
    found = w.victim() if r.random() < 0.5 else None
    if found is not None:
        s, t = found
        # A margin over 1.5 M so that rounding to cents in the shopper's currency stays above it.
        amount = max(1_510_000.0, s.mean_krw * r.uniform(15, 60))
        return [w.draft("high_value_outlier", t, (s.user_id, s.email), amount, "card", r.choice(s.cards),
                        s.ips[0], s.devices[0], s.country, s.country, CURRENCY_OF[s.country])]
    amount = math.exp(r.uniform(math.log(2_000_000), math.log(15_000_000)))
    return [w.draft("high_value_outlier", ids.day_time(w.days), w.fresh_user(0.3), amount, "card",
                    ids.stolen_card(), ids.ip("KR"), ids.device(), "KR", "KR")]


def bot_velocity(w: World) -> list[Draft]:
    r, ids = w.rng, w.ids
    device, ip = ids.device(), ids.ip("HOSTING")
    t = r.uniform(0, w.end)
    out = []
    for _ in range(r.randint(8, 25)):
        user, card = w.fresh_user(0.6), ids.stolen_card()
        for _ in range(r.choice((1, 1, 2))):
            method = "card" if r.random() < 0.7 else "kakao_pay"
            amount = math.exp(r.gauss(math.log(60_000), 0.3))
            out.append(w.draft("bot_velocity", t, user, amount, method, card if method == "card" else None,
                               ip, device, "KR", "KR"))
            t += r.uniform(20, 150)
    return out


def stolen_card(w: World) -> list[Draft]:
    r, ids = w.rng, w.ids
    card = ids.stolen_card()
    t = r.uniform(0, w.end)
    out = []
    for _ in range(r.randint(4, 10)):
        amount = math.exp(r.uniform(math.log(150_000), math.log(900_000)))
        ip = ids.ip("HOSTING" if r.random() < 0.6 else "KR")
        shipping = "KR" if r.random() < 0.6 else r.choice(FOREIGN_COUNTRIES)
        out.append(w.draft("stolen_card", t, w.fresh_user(0.4), amount, "card", card, ip, ids.device(),
                           "KR", shipping))
        t += r.uniform(20, 120)
    return out


SCENARIOS: dict[str, Callable[[World], list[Draft]]] = {
    "card_testing": card_testing,
    "account_takeover": account_takeover,
    "high_value_outlier": high_value_outlier,
    "bot_velocity": bot_velocity,
    "stolen_card": stolen_card,
}


def quotas(n_fraud: int) -> dict[str, int]:
    """Transactions per pattern summing to ``n_fraud``; every pattern gets one when there are enough."""
    floor = 1 if n_fraud >= len(WEIGHTS) else 0
    rest = n_fraud - floor * len(WEIGHTS)
    shares = {name: rest * weight for name, weight in WEIGHTS.items()}
    counts = {name: floor + int(share) for name, share in shares.items()}
    # Largest remainders first, so the total is exact and the split stays close to WEIGHTS.
    by_remainder = sorted(WEIGHTS, key=lambda name: shares[name] - int(shares[name]), reverse=True)
    for name in by_remainder[: n_fraud - sum(counts.values())]:
        counts[name] += 1
    return counts


def fraud_drafts(w: World, n_fraud: int) -> list[Draft]:
    """Episodes per pattern until each quota is met; the last episode is cut to fit exactly."""
    out: list[Draft] = []
    for name, quota in quotas(n_fraud).items():
        made: list[Draft] = []
        while len(made) < quota:
            # A pattern may fall back to another (no victim with history yet); relabel nothing.
            made.extend(SCENARIOS[name](w))
        out.extend(made[:quota])
    return out
