"""Rule engine: the rule book's rules over the transaction's facts.

The score is the sum of the scores of the rules that fire, capped at 100; each firing rule's
name is a risk factor; rules marked ``block`` are hard blocklist hits. The engine yields to the
event loop every ``YIELD_EVERY`` rules, so that its budget can cut a rule book grown too large
instead of the whole evaluation waiting for it.
"""

from __future__ import annotations

import asyncio

from services.ml.features import SMALL_AMOUNT_KRW

from ..context import Context
from ..rulebook import Facts, Rule
from . import EngineResult


def facts(ctx: Context) -> Facts:
    t, agg = ctx.txn, ctx.aggregates
    return {
        "amount_krw": ctx.amount_krw,
        "amount_ratio": ctx.amount_ratio,
        "history_count": agg.history_count,
        "user_velocity": agg.user_velocity,
        "card_velocity": agg.card_velocity,
        "card_small_velocity": ctx.card_small_velocity,
        "ip_velocity": agg.ip_velocity,
        "device_velocity": agg.device_velocity,
        "small_amount": 1.0 if ctx.amount_krw < SMALL_AMOUNT_KRW else 0.0,
        "new_device": 1.0 if agg.new_device else 0.0,
        "country_mismatch": 1.0 if t.billing_country != t.shipping_country else 0.0,
        "is_card": 1.0 if t.payment_method == "card" else 0.0,
        "user_id": t.user_id,
        "email": t.email,
        "email_domain": t.email.rsplit("@", 1)[-1],
        "card_bin": t.card_bin,
        "ip_address": str(t.ip_address),
        "device_id": t.device_id,
        "billing_country": t.billing_country,
        "shipping_country": t.shipping_country,
        "payment_method": t.payment_method,
        "currency": t.currency,
    }


YIELD_EVERY = 256


class RuleEngine:
    name = "rule"

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules

    async def evaluate(self, ctx: Context) -> EngineResult:
        known = facts(ctx)
        hits = []
        for index, rule in enumerate(self.rules, start=1):
            if rule.matches(known):
                hits.append(rule)
            if index % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        return EngineResult(
            score=min(100.0, sum(rule.score for rule in hits)),
            factors=[rule.name for rule in hits],
            details={"rules": len(self.rules), "fired": len(hits)},
            block_reasons=tuple(rule.name for rule in hits if rule.block),
        )
