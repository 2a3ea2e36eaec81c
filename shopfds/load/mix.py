"""The traffic of ``shopfds load``: who comes, how often, how many checkouts that makes, and what
the FDS is expected to decide for each scenario.

``--tps`` is checkouts per second (orders the shop sends to the FDS), as in the seed's "1000 TPS".
Locust paces users, not checkouts: :func:`users_for` sizes the users and their pace so that this
mix makes ``tps`` checkouts a second when every request is instant. It is a target: the time the
shop takes per request comes on top, and the load's summary prints the checkouts/s reached.

The locustfile takes its weights from here (it runs in its own process, with gevent; this module
imports nothing of Locust). ``SHOPFDS_LOAD_ATTACKS`` (comma-separated scenario names, default
all) keeps only those attacks in the fraudsters' mix.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

SHOPPER_WEIGHT = 8
FRAUDSTER_WEIGHT = 2
FIXED_USERS = 2  # the Labeler and the Reviewer, one each whatever the rate
SHOPPER_TASKS = {"browse": 4, "buy": 1}  # a buy is one checkout
SHOPPER_WAIT = (0.5, 1.5)  # seconds between a shopper's actions, times the pace
FRAUDSTER_WAIT = (3.0, 6.0)  # attacks are rarer than shopping
CARD_TESTING_PROBES = (3, 5)  # checkouts of one card-testing burst
CARD_TESTING_CAUGHT_FROM = 3  # the card_testing rule: third or later small payment on one card
ATTACKS = {"card_testing": 3, "account_takeover": 2, "high_value": 1, "cti_device": 1, "cti_ip": 1,
           "disposable_email": 1, "blocked_domain": 1}
# On the FDS's threat-intel feeds: the devices of cti_device, the addresses of cti_ip.
CTI_DEVICES = ("device-emulator-farm-01", "device-emulator-farm-02", "device-fraud-kit")
CTI_IPS = ("198.51.100.66", "198.51.100.67", "203.0.113.25")
ATTACKS_ENV = "SHOPFDS_LOAD_ATTACKS"
"""Comma-separated attack scenarios the fraudsters play; default: all of :data:`ATTACKS`."""

# What the FDS decides for each scenario when it has all its evidence (no engine or aggregate
# missing), from services/fds/rules.yaml and the CTI feeds; machine learning may only add to a
# score, so the decision can be stricter than the rule alone asks for, never laxer.
FLAGGED = ("additional_auth", "hold", "block")
EXPECTED: dict[str, tuple[str, ...]] = {
    "normal": ("approve",),  # mostly: a shopper's basket can still look odd to the model
    "card_testing": ("hold", "block"),  # card_testing (60), from the third probe
    "account_takeover": ("hold", "block"),  # new device abroad, far above the victim's mean
    "high_value": ("hold", "block"),  # first purchase >= 2,000,000 KRW (60), shipped abroad (20)
    "cti_device": ("hold", "block"),  # cti_bad_device (80)
    "cti_ip": ("block",),  # cti_bad_ip (90)
    "disposable_email": FLAGGED,  # cti_disposable_email (40): step-up at least
    "blocked_domain": ("block",),  # blocklist_email_domain
}


def expected(scenario: str, probe: int = 1) -> tuple[str, ...] | None:
    """The decisions the scenario expects of this checkout; None where the FDS cannot know yet
    (the first probes of a card-testing burst look like any small purchase)."""
    if scenario == "card_testing" and probe < CARD_TESTING_CAUGHT_FROM:
        return None
    return EXPECTED[scenario]


def attacks(env: Mapping[str, str]) -> dict[str, int]:
    """The attack weights ``env`` asks for (``SHOPFDS_LOAD_ATTACKS``); ValueError names an unknown one."""
    names = [n.strip() for n in env.get(ATTACKS_ENV, "").split(",") if n.strip()]
    unknown = sorted(set(names) - set(ATTACKS))
    if unknown:
        raise ValueError(f"{ATTACKS_ENV}: unknown attack {', '.join(unknown)} (known: {', '.join(ATTACKS)})")
    return {name: w for name, w in ATTACKS.items() if name in names} if names else dict(ATTACKS)


def checkouts_per_attack(name: str) -> float:
    return sum(CARD_TESTING_PROBES) / 2 if name == "card_testing" else 1.0


def checkouts_per_user_second(chosen: Iterable[str] = ATTACKS, pace: float = 1.0) -> float:
    """Checkouts a second of one weighted user (shopper or fraudster, in their proportions)."""
    weights = {name: ATTACKS[name] for name in chosen}
    shopper = SHOPPER_TASKS["buy"] / sum(SHOPPER_TASKS.values()) / (sum(SHOPPER_WAIT) / 2 * pace)
    per_attack = sum(w * checkouts_per_attack(n) for n, w in weights.items()) / sum(weights.values())
    fraudster = per_attack / (sum(FRAUDSTER_WAIT) / 2 * pace)
    total = SHOPPER_WEIGHT + FRAUDSTER_WEIGHT
    return (SHOPPER_WEIGHT * shopper + FRAUDSTER_WEIGHT * fraudster) / total


def users_for(tps: float, chosen: Iterable[str] = ATTACKS, max_users: int = 400) -> tuple[int, float]:
    """(Locust users, pace in seconds) for ``tps`` checkouts a second: a pace of about a second
    while ``max_users`` allows, faster beyond; at least five weighted users so that a fraudster
    is among them."""
    per_user = checkouts_per_user_second(chosen)
    weighted = min(max_users - FIXED_USERS, max(5, math.ceil(tps / per_user)))
    return weighted + FIXED_USERS, weighted * per_user / tps
