"""POST /v1/fds/evaluate: score a transaction (idempotent by transaction_id)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from opentelemetry import trace

import otel_setup
from otel_setup import Attr
from services.common.app import SessionDep

from ... import store
from ...schemas import Evaluation, Transaction

router = APIRouter(prefix="/v1/fds", tags=["evaluate"])
REPLAY_MARKER_TTL = 86_400.0


@router.post("/evaluate", response_model=Evaluation)
async def evaluate(txn: Transaction, request: Request, session: SessionDep) -> Evaluation:
    span = trace.get_current_span()
    span.set_attribute(Attr.FDS_TRANSACTION_ID, txn.transaction_id)
    state = request.app.state
    marker = f"fds:evaluated:{txn.transaction_id}"
    # Only a transaction marked as evaluated costs a database read; the marker (cache, one day)
    # keeps a retry from counting twice in the velocity windows, and the unique key in the
    # database keeps it from being stored or counted twice even when the marker is gone.
    if await state.cache.get(marker) is not None:
        known = await store.find(session, txn.transaction_id)
        if known is not None:  # a retry: the first answer stands and nothing is counted twice
            span.set_attribute("fds.replayed", True)
            return _annotate(span, store.to_evaluation(known))
    with state.fds_metrics.in_progress():
        outcome = await state.evaluator.evaluate(txn)
    row, created = await store.save(session, txn, outcome.evaluation)
    await state.cache.set(marker, "1", REPLAY_MARKER_TTL)
    if not created:
        return _annotate(span, store.to_evaluation(row))
    if state.fds_metrics.evaluated(outcome):
        otel_setup.capture_fds_performance_issue(outcome.evaluation.duration_ms, state.settings.sla_seconds * 1000,
                                                 txn.transaction_id, outcome.slowest_engine)
    return _annotate(span, outcome.evaluation)


def _annotate(span: trace.Span, ev: Evaluation) -> Evaluation:
    span.set_attributes({
        Attr.FDS_RISK_SCORE: ev.risk_score,
        Attr.FDS_RISK_LEVEL: ev.risk_level,
        Attr.FDS_DECISION: ev.decision,
        Attr.FDS_DEGRADED: ev.degraded,
        "fds.duration_ms": ev.duration_ms,
    })
    return ev
