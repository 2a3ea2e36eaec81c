"""From engine results to one risk score, risk level and decision.

Score: a weighted noisy-OR of the engines that answered,
``100 * (1 - prod((1 - score_e / 100) ** weight_e))``: one engine at weight 1 alone reaches its
own score (a known-bad IP is not diluted by two quiet engines, as it would be by an average),
independent signals compound, and an engine that did not answer adds no evidence, so the
weights of the others need no renormalisation.

Level by thresholds (settings): low < medium (30) <= ... < high (60) <= ... < blocked (85).
Decision: low -> approve, medium -> additional_auth, high -> hold, blocked -> block; a hard
blocklist hit is blocked/block whatever the score.

Degraded policy (an engine timed out, failed or is unavailable):
- ML missing: decide on rules and CTI alone; flagged degraded.
- CTI missing (or its provider): continue on rules and ML; flagged degraded.
- Rules missing (velocity, blocklists and amount history are unknown): never approve; hold when
  the amount is at least ``rule_fallback_hold_amount_krw``, else additional_auth (or the
  stricter decision the other engines reached).
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.trace import SpanContext

from . import engines
from .settings import Settings

DECISION_OF_LEVEL = {"low": "approve", "medium": "additional_auth", "high": "hold", "blocked": "block"}
LEVEL_OF_DECISION = {d: level for level, d in DECISION_OF_LEVEL.items()}
RANK = {"approve": 0, "additional_auth": 1, "hold": 2, "block": 3}


@dataclass(frozen=True)
class EngineRun:
    name: str
    status: str  # ok | timeout | error | unavailable
    duration_ms: float
    result: engines.EngineResult | None = None
    error: BaseException | None = None
    span_context: SpanContext | None = None

    @property
    def score(self) -> float:
        return self.result.score if self.result is not None else 0.0


@dataclass(frozen=True)
class Verdict:
    score: float
    level: str
    decision: str
    factors: list[str]
    degraded_reasons: list[str]
    blocked_reason: str | None  # low-cardinality: blocklist | risk_score
    model_version: int | None


def combine(runs: list[EngineRun], amount_krw: float, settings: Settings,
            extra_reasons: tuple[str, ...] = ()) -> Verdict:
    weights = {"rule": settings.rule_weight, "ml": settings.ml_weight, "cti": settings.cti_weight}
    answered = [(r.name, r.result) for r in runs if r.result is not None]
    survival = 1.0
    for name, result in answered:
        survival *= (1.0 - min(result.score, 100.0) / 100.0) ** weights.get(name, 1.0)
    score = round(100.0 * (1.0 - survival), 1)
    level = level_for(score, settings)
    decision = DECISION_OF_LEVEL[level]

    factors = list(dict.fromkeys(f for _, result in answered for f in result.factors))
    block_reasons = [b for _, result in answered for b in result.block_reasons]
    reasons = [*extra_reasons, *(f"{r.name}_{r.status}" for r in runs if r.status != "ok")]
    reasons += [result.partial_reason for _, result in answered if result.partial_reason]

    if block_reasons:
        level, decision = "blocked", "block"
    elif any(r.name == "rule" and r.status != "ok" for r in runs):
        floor = "hold" if amount_krw >= settings.rule_fallback_hold_amount_krw else "additional_auth"
        if RANK[floor] > RANK[decision]:
            decision, level = floor, LEVEL_OF_DECISION[floor]
    blocked_reason = ("blocklist" if block_reasons else "risk_score") if decision == "block" else None
    version = next((result.model_version for _, result in answered if result.model_version is not None), None)
    return Verdict(score, level, decision, factors, reasons, blocked_reason, version)


def level_for(score: float, settings: Settings) -> str:
    if score >= settings.blocked_threshold:
        return "blocked"
    if score >= settings.high_threshold:
        return "high"
    if score >= settings.medium_threshold:
        return "medium"
    return "low"
