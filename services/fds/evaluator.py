"""One evaluation: aggregates, then the three engines concurrently, then the aggregator.

Each engine runs in its own span ``fds.engine.<name>`` (attribute ``fds.engine``; otel_setup
derives the per-engine duration histograms from these spans) under its own budget
(``rule_timeout_seconds`` 30 ms, ``ml_timeout_seconds`` 40 ms, ``cti_timeout_seconds`` 50 ms).
An engine that times out or raises becomes status ``timeout`` / ``error`` (``unavailable`` when
it has nothing to score with) and the degraded policy of ``aggregator`` applies; failures go to
Sentry with the final risk score, linked to the engine's span. One Sentry breadcrumb per engine.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, StatusCode

import otel_setup
from otel_setup.catalog import Attr, engine_span
from otel_setup.spans import current_span
from services.common.cache import Cache

from . import aggregator, context
from .aggregator import EngineRun, Verdict
from .engines import Engine, EngineUnavailable
from .schemas import EngineReport, Evaluation, Transaction
from .settings import Settings


@dataclass(frozen=True)
class Outcome:
    evaluation: Evaluation
    verdict: Verdict
    slowest_engine: str
    duration_s: float


class Evaluator:
    def __init__(self, settings: Settings, cache: Cache, tracer: trace.Tracer, engines: list[Engine]) -> None:
        self.settings = settings
        self.cache = cache
        self.tracer = tracer
        self.engines = engines
        self.budgets = {"rule": settings.rule_timeout_seconds, "ml": settings.ml_timeout_seconds,
                        "cti": settings.cti_timeout_seconds}

    async def evaluate(self, txn: Transaction) -> Outcome:
        started = time.perf_counter()
        ctx, context_problem = await self._context(txn)
        runs = list(await asyncio.gather(*(self._run(engine, ctx) for engine in self.engines)))
        extra = (context_problem,) if context_problem else ()
        verdict = aggregator.combine(runs, ctx.amount_krw, self.settings, extra)
        duration_s = time.perf_counter() - started
        self._report(txn, runs, verdict)
        evaluation = Evaluation(
            transaction_id=txn.transaction_id,
            risk_score=verdict.score,
            risk_level=verdict.level,  # type: ignore[arg-type]
            decision=verdict.decision,  # type: ignore[arg-type]
            risk_factors=verdict.factors,
            engines={r.name: EngineReport(score=round(r.score, 2), duration_ms=round(r.duration_ms, 3),
                                          status=r.status)  # type: ignore[arg-type]
                     for r in runs},
            degraded=bool(verdict.degraded_reasons),
            degraded_reason=", ".join(verdict.degraded_reasons) or None,
            model_version=verdict.model_version,
            duration_ms=round(duration_s * 1000, 3),
        )
        slowest = max(runs, key=lambda r: r.duration_ms).name if runs else "none"
        return Outcome(evaluation, verdict, slowest, duration_s)

    async def _context(self, txn: Transaction) -> tuple[context.Context, str | None]:
        # Its own span: cache latency shows in the trace beside the engines, and a cache failure
        # marks this span, not the request that still succeeds.
        with current_span(self.tracer, "fds.aggregates") as span:
            collect = context.collect(txn, self.cache, self.settings.history_ttl_seconds)
            try:
                ctx = await asyncio.wait_for(collect, self.settings.aggregates_timeout_seconds)
            except TimeoutError:
                span.set_attribute(Attr.FDS_AGGREGATES_STATUS, "timeout")
                return context.bare_context(txn), "aggregates_timeout"
            except Exception as exc:  # a cache failure must not fail the evaluation
                otel_setup.capture_fds_exception(exc, transaction_id=txn.transaction_id, engine="aggregates")
                return context.bare_context(txn), "aggregates_error"
            if self.cache.backend == "memory-fallback":
                # Redis is down: velocity and history come from this process's store alone,
                # which started empty and sees only this replica's traffic.
                span.set_attribute(Attr.FDS_AGGREGATES_STATUS, "fallback")
                return ctx, "aggregates_fallback"
            return ctx, None

    async def _run(self, engine: Engine, ctx: context.Context) -> EngineRun:
        name = engine.name
        span_name, attributes = engine_span(name)
        with current_span(self.tracer, span_name, attributes) as span:
            started = time.perf_counter()
            try:
                result = await asyncio.wait_for(engine.evaluate(ctx), self.budgets.get(name, 0.05))
            except EngineUnavailable:
                run = EngineRun(name, "unavailable", _ms(started), span_context=span.get_span_context())
            except TimeoutError as exc:
                run = EngineRun(name, "timeout", _ms(started), error=exc, span_context=span.get_span_context())
            except Exception as exc:
                run = EngineRun(name, "error", _ms(started), error=exc, span_context=span.get_span_context())
            else:
                run = EngineRun(name, "ok", _ms(started), result)
                span.set_attribute(Attr.FDS_SCORE, result.score)
            span.set_attribute(Attr.FDS_STATUS, run.status)
            if run.error is not None:
                span.record_exception(run.error)
                span.set_status(StatusCode.ERROR, f"{name} engine {run.status}")
        return run

    def _report(self, txn: Transaction, runs: list[EngineRun], verdict: Verdict) -> None:
        for run in runs:
            otel_setup.add_fds_breadcrumb(f"{run.name} engine {run.status} in {run.duration_ms:.1f} ms",
                                          engine=run.name, risk_score=run.score, decision=verdict.decision)
            if run.error is None or run.span_context is None:
                continue
            # Sent now, with the final score; linked to the engine span (not the server span,
            # whose request succeeded: a non-recording stand-in keeps it from being marked failed).
            with trace.use_span(NonRecordingSpan(run.span_context)):
                otel_setup.capture_fds_exception(run.error, transaction_id=txn.transaction_id,
                                                 risk_score=verdict.score, engine=run.name)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
