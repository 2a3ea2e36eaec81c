"""Simulated people for the transaction generator: identities, normal shoppers and their purchases.

Everything is drawn from one ``random.Random`` so that a seed gives the same people, the same
purchases and the same ids on every run. Times are seconds from the start of the simulation;
``generator`` turns them into datetimes and computes the aggregates in time order.

A normal shopper has a home country (mostly KR), 1-3 devices, 1-2 home/mobile IPs, 1-2 cards, a
preferred payment method and a personal mean amount (log-normal across shoppers, in KRW); each
purchase is log-normal around that mean. Shoppers buy a few times a day on a Seoul-time diurnal
curve, sometimes twice in one session, sometimes from a new phone, as a gift shipped abroad, as
a big-ticket buy or while travelling (a foreign consumer IP, sometimes shipped to the hotel):
the legitimate noise a fraud model must not flag. Such a purchase carries its ``unusual`` tag
(``UNUSUAL``), so that benches can measure how often the FDS stops legitimate unusual shoppers.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field

from services.common.money import KRW_RATE

DAY = 86_400.0
KST_OFFSET = 9 * 3600.0
# Relative purchase activity per hour of the day in Seoul (KST), quiet at night, peak in the evening.
KST_HOUR_WEIGHTS = (1.0, 0.6, 0.3, 0.2, 0.2, 0.3, 0.6, 1.2, 2.0, 2.5, 3.0, 3.5,
                    4.0, 3.5, 3.0, 3.0, 3.2, 3.5, 4.0, 4.5, 5.0, 5.0, 4.0, 2.5)
HOME_COUNTRIES = (("KR", 0.86), ("US", 0.05), ("JP", 0.05), ("CN", 0.04))
CURRENCY_OF = {"KR": "KRW", "US": "USD", "JP": "JPY", "CN": "CNY"}
# First octets of consumer ISP ranges per country, and of hosting ranges that fraud traffic uses.
IP_PREFIXES = {"KR": (211, 175, 121, 58, 112, 222, 1), "US": (73, 24, 98, 67), "JP": (126, 153, 60),
               "CN": (36, 112, 123), "HOSTING": (185, 45, 91, 103, 5, 194)}
FOREIGN_COUNTRIES = ("US", "CN", "RU", "NG", "VN", "BR", "GB", "DE")
METHODS = (("card", 0.65), ("kakao_pay", 0.15), ("naver_pay", 0.12), ("bank_transfer", 0.08))
MAIL_DOMAINS = ("naver.com", "gmail.com", "daum.net", "kakao.com", "hanmail.net")
DISPOSABLE_DOMAINS = ("mailinator.com", "guerrillamail.com", "10minutemail.com", "yopmail.com")
# Tags of legitimate purchases that look unusual (``Draft.unusual``); "" for an ordinary one.
UNUSUAL = ("big_first", "big_ticket", "new_device", "gift_abroad", "travel")
CARD_BINS = ("457973", "540926", "625904", "949013", "436420", "518831", "404825", "552576")


_VARIANT = "89ab"
_HOURS = tuple(range(24))
_HOUR_CUM = tuple(itertools.accumulate(KST_HOUR_WEIGHTS))
_TABLES: dict[tuple[tuple[str, float], ...], tuple[list[str], list[float]]] = {}


def _cumulative(weighted: tuple[tuple[str, float], ...]) -> tuple[list[str], list[float]]:
    return [k for k, _ in weighted], list(itertools.accumulate(w for _, w in weighted))


@dataclass(slots=True)
class Draft:
    """A transaction before its aggregates: who, what, where and when (seconds from the start)."""

    seq: int
    t: float
    transaction_id: str
    order_id: str
    user_id: str
    email: str
    amount_krw: float
    currency: str
    payment_method: str
    card: tuple[str, str] | None
    ip_address: str
    device_id: str
    billing_country: str
    shipping_country: str
    is_fraud: bool
    pattern: str
    unusual: str = ""


@dataclass(slots=True)
class Shopper:
    user_id: str
    email: str
    country: str
    devices: list[str]
    ips: list[str]
    cards: list[tuple[str, str]]
    method: str
    mean_krw: float
    first_t: float = math.inf
    times: list[float] = field(default_factory=list)


class Ids:
    """Deterministic ids, addresses and cards drawn from the generator's random stream."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def uuid(self) -> str:
        """A version-4 UUID string (formatted directly: ``uuid.UUID`` is the generator's hot spot)."""
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def device(self) -> str:
        return f"dev-{self.rng.getrandbits(48):012x}"

    def ip(self, kind: str) -> str:
        r = self.rng
        return f"{r.choice(IP_PREFIXES[kind])}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"

    def card(self) -> tuple[str, str]:
        return self.rng.choice(CARD_BINS), f"{self.rng.randrange(10_000):04d}"

    def stolen_card(self) -> tuple[str, str]:
        """Any Visa/Mastercard BIN: stolen cards come from everywhere (and do not collide)."""
        return f"{self.rng.choice('45')}{self.rng.randrange(100_000):05d}", f"{self.rng.randrange(10_000):04d}"

    def email(self, disposable: bool = False) -> str:
        domains = DISPOSABLE_DOMAINS if disposable else MAIL_DOMAINS
        return f"u{self.rng.getrandbits(40):010x}@{self.rng.choice(domains)}"

    def pick(self, weighted: tuple[tuple[str, float], ...]) -> str:
        # Cumulative weights once per table: ``choices`` would rebuild them on every draw.
        keys, cum = _TABLES.get(weighted) or _TABLES.setdefault(weighted, _cumulative(weighted))
        return self.rng.choices(keys, cum_weights=cum)[0]

    def day_time(self, days: float) -> float:
        """A moment in the simulation on the Seoul diurnal curve."""
        r = self.rng
        day = r.randrange(max(1, int(days)))
        hour = r.choices(_HOURS, cum_weights=_HOUR_CUM)[0]
        # A KST hour h of day d is UTC h-9: shift, then keep it inside the simulated span.
        t = day * DAY + hour * 3600.0 + r.random() * 3600.0 - KST_OFFSET
        return t % (days * DAY)


def make_shoppers(ids: Ids, count: int) -> list[Shopper]:
    r = ids.rng
    shoppers = []
    for _ in range(count):
        country = ids.pick(HOME_COUNTRIES)
        shoppers.append(Shopper(
            user_id=ids.uuid(), email=ids.email(), country=country,
            devices=[ids.device() for _ in range(r.choices((1, 2, 3), (0.5, 0.35, 0.15))[0])],
            ips=[ids.ip(country) for _ in range(r.choice((1, 2)))],
            cards=[ids.card() for _ in range(r.choice((1, 1, 2)))],
            method=ids.pick(METHODS),
            mean_krw=math.exp(r.gauss(math.log(45_000), 0.8)),
        ))
    return shoppers


def normal_drafts(ids: Ids, shoppers: list[Shopper], count: int, days: float, seq0: int) -> list[Draft]:
    """``count`` legitimate purchases; heavy shoppers buy more (activity is log-normal)."""
    r = ids.rng
    activity = list(itertools.accumulate(math.exp(r.gauss(0, 0.7)) for _ in shoppers))
    drafts: list[Draft] = []
    while len(drafts) < count:
        shopper = r.choices(shoppers, cum_weights=activity)[0]
        t = ids.day_time(days)
        drafts.append(_purchase(ids, shopper, t, seq0 + len(drafts)))
        # A second purchase in the same session (a forgotten item): ordinary short-term velocity.
        if r.random() < 0.25 and len(drafts) < count:
            drafts.append(_purchase(ids, shopper, t + r.uniform(60, 1800), seq0 + len(drafts)))
    return drafts


def _purchase(ids: Ids, s: Shopper, t: float, seq: int) -> Draft:
    r = ids.rng
    unusual = ""
    amount = math.exp(r.gauss(math.log(s.mean_krw), 0.45))
    if r.random() < 0.015:  # an occasional legitimate big-ticket buy (a laptop, a gift)
        amount *= r.uniform(3, 8)
        unusual = "big_ticket"
    method = s.method if r.random() < 0.8 else ids.pick(METHODS)
    device = s.devices[0] if r.random() < 0.7 else r.choice(s.devices)
    if r.random() < 0.02:  # a new phone: legitimate new devices happen
        device = ids.device()
        s.devices.append(device)
        unusual = "new_device"
    ip = r.choice(s.ips)
    shipping = s.country
    if r.random() < 0.02:  # a gift abroad
        shipping = r.choice(FOREIGN_COUNTRIES)
        unusual = "gift_abroad"
    elif r.random() < 0.015:  # travelling: a foreign consumer IP, half the time shipped to the hotel
        abroad = r.choice([c for c in ("US", "JP", "CN") if c != s.country])
        ip = ids.ip(abroad)
        shipping = abroad if r.random() < 0.5 else s.country
        unusual = "travel"
    s.first_t = min(s.first_t, t)
    s.times.append(t)
    return Draft(
        seq=seq, t=t, transaction_id=ids.uuid(), order_id=ids.uuid(), user_id=s.user_id, email=s.email,
        amount_krw=max(1_000.0, amount), currency=CURRENCY_OF[s.country], payment_method=method,
        card=r.choice(s.cards) if method == "card" else None, ip_address=ip, device_id=device,
        billing_country=s.country, shipping_country=shipping, is_fraud=False, pattern="normal",
        unusual=unusual,
    )


def big_first_purchases(ids: Ids, drafts: list[Draft], share: float) -> None:
    """Make the first purchase of ``share`` of the shoppers a big one (a new customer's laptop):
    5-20x their usual amount, 300 k-1.5 M KRW. ``drafts`` must be in time order."""
    r = ids.rng
    seen: set[str] = set()
    for d in drafts:
        if d.is_fraud or d.user_id in seen:
            continue
        seen.add(d.user_id)
        if r.random() < share:
            d.amount_krw = min(1_500_000.0, max(300_000.0, d.amount_krw * r.uniform(5, 20)))
            d.unusual = "big_first"


def in_currency(amount_krw: float, currency: str) -> float:
    """The amount a shopper paying in ``currency`` is charged (cents, whole yen/won)."""
    amount = amount_krw / KRW_RATE[currency]
    if currency in ("KRW", "JPY"):
        return float(max(1, round(amount)))
    return max(0.01, round(amount, 2))
