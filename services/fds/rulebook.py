"""The rule book: data-driven rules read from YAML and validated before the service starts.

    lists:                        # named lists for ``in`` / ``not_in``
      blocked_users: [user-666]
    rules:
      - name: velocity_user       # also the risk factor reported when the rule fires
        description: many orders from one user within an hour
        when: [user_velocity >= 5]          # all conditions must hold
        score: 35                           # added to the rule engine score (capped at 100)
      - name: blocklist_user
        when: [user_id in blocked_users]
        score: 100
        block: true                         # a hit blocks the transaction, whatever the score

A condition is ``<fact> <op> <value>``. Numeric facts take ``> >= < <= == !=`` and a number;
text facts take ``== !=`` and a word, or ``in`` / ``not_in`` and a list name. Facts are listed
in ``NUMERIC_FACTS`` and ``TEXT_FACTS``. Any mistake (unknown fact, operator or list, bad
number, duplicate name, score outside 0-100) raises ``RuleBookError`` naming the file, the rule
and the problem, so a bad file stops the service at start instead of mis-scoring.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

NUMERIC_FACTS = {
    "amount_krw": "amount in KRW",
    "amount_ratio": "amount over the user's mean before it (0 without history)",
    "history_count": "user's previous transactions",
    "user_velocity": "user's transactions in the last hour",
    "card_velocity": "card's transactions in the last 10 minutes",
    "card_small_velocity": "card's small-amount transactions in the last 10 minutes (0 if this one is not small)",
    "ip_velocity": "IP's transactions in the last hour",
    "device_velocity": "device's transactions in the last hour",
    "small_amount": "1 under 5,000 KRW",
    "new_device": "1 if the user has not used this device before",
    "country_mismatch": "1 if billing and shipping countries differ",
    "is_card": "1 if paid by card",
}
TEXT_FACTS = {
    "user_id": "", "email": "lower case", "email_domain": "lower case", "card_bin": "",
    "ip_address": "", "device_id": "", "billing_country": "upper case", "shipping_country": "upper case",
    "payment_method": "", "currency": "",
}
_CASE_FOLDED = {"email", "email_domain"}
_NUMERIC_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
Facts = Mapping[str, float | str | None]
# libyaml's safe loader when the wheel has it (much faster on large rule books), else Python's.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RuleBookError(ValueError):
    pass


@dataclass(frozen=True)
class Condition:
    fact: str
    op: str
    value: float | str | frozenset[str]

    def holds(self, facts: Facts) -> bool:
        actual = facts.get(self.fact)
        if actual is None:  # an absent optional field (no card, no device) never matches
            return False
        if isinstance(self.value, frozenset):
            return (actual in self.value) == (self.op == "in")
        if isinstance(self.value, str):
            return (actual == self.value) == (self.op == "==")
        return _NUMERIC_OPS[self.op](float(actual), self.value)


@dataclass(frozen=True)
class Rule:
    name: str
    score: float
    conditions: tuple[Condition, ...]
    block: bool = False
    description: str = ""

    def matches(self, facts: Facts) -> bool:
        return all(c.holds(facts) for c in self.conditions)


def load(path: str | Path) -> list[Rule]:
    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_LOADER)
    except (OSError, yaml.YAMLError) as exc:
        raise RuleBookError(f"rule book {path}: cannot read: {exc}") from exc
    try:
        return parse(data)
    except RuleBookError as exc:
        raise RuleBookError(f"rule book {path}: {exc}") from None


def parse(data: Any) -> list[Rule]:
    if not isinstance(data, dict) or set(data) - {"lists", "rules"}:
        raise RuleBookError("top level must be a mapping with 'rules' (and optional 'lists')")
    lists = _lists(data.get("lists") or {})
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise RuleBookError("'rules' must be a non-empty list")
    rules: list[Rule] = []
    names: set[str] = set()
    for index, raw in enumerate(raw_rules):
        rule = _rule(raw, index, lists)
        if rule.name in names:
            raise RuleBookError(f"rule {rule.name!r}: duplicate name")
        names.add(rule.name)
        rules.append(rule)
    return rules


def _lists(raw: Any) -> dict[str, list[str]]:
    if not isinstance(raw, dict):
        raise RuleBookError("'lists' must map list names to lists of strings")
    out: dict[str, list[str]] = {}
    for name, values in raw.items():
        if not isinstance(values, list) or not all(isinstance(v, str | int) for v in values):
            raise RuleBookError(f"list {name!r} must be a list of strings")
        out[str(name)] = [str(v).strip() for v in values]
    return out


def _rule(raw: Any, index: int, lists: dict[str, list[str]]) -> Rule:
    if not isinstance(raw, dict):
        raise RuleBookError(f"rule #{index + 1}: must be a mapping")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise RuleBookError(f"rule #{index + 1}: 'name' must be snake_case (it is the risk factor)")
    unknown = set(raw) - {"name", "description", "when", "score", "block"}
    if unknown:
        raise RuleBookError(f"rule {name!r}: unknown keys {sorted(unknown)}")
    score = raw.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 100:
        raise RuleBookError(f"rule {name!r}: 'score' must be a number 0-100")
    when = raw.get("when")
    if not isinstance(when, list) or not when or not all(isinstance(c, str) for c in when):
        raise RuleBookError(f"rule {name!r}: 'when' must be a non-empty list of conditions")
    block = raw.get("block", False)
    if not isinstance(block, bool):
        raise RuleBookError(f"rule {name!r}: 'block' must be true or false")
    try:
        conditions = tuple(_condition(text, lists) for text in when)
    except RuleBookError as exc:
        raise RuleBookError(f"rule {name!r}: {exc}") from None
    return Rule(name, float(score), conditions, block, str(raw.get("description", "")))


def _condition(text: str, lists: dict[str, list[str]]) -> Condition:
    parts = text.split()
    if len(parts) != 3:
        raise RuleBookError(f"condition {text!r}: expected '<fact> <op> <value>'")
    fact, op, value = parts
    if fact in NUMERIC_FACTS:
        if op not in _NUMERIC_OPS:
            raise RuleBookError(f"condition {text!r}: numeric fact takes one of {' '.join(_NUMERIC_OPS)}")
        try:
            return Condition(fact, op, float(value))
        except ValueError:
            raise RuleBookError(f"condition {text!r}: {value!r} is not a number") from None
    if fact not in TEXT_FACTS:
        raise RuleBookError(f"condition {text!r}: unknown fact {fact!r}; known: "
                            f"{', '.join([*NUMERIC_FACTS, *TEXT_FACTS])}")
    fold = str.lower if fact in _CASE_FOLDED else str
    if op in ("in", "not_in"):
        if value not in lists:
            raise RuleBookError(f"condition {text!r}: unknown list {value!r}")
        return Condition(fact, op, frozenset(fold(v) for v in lists[value]))
    if op in ("==", "!="):
        return Condition(fact, op, fold(value))
    raise RuleBookError(f"condition {text!r}: text fact takes ==, !=, in or not_in")
