"""POST /v1/fds/evaluate: score a transaction (idempotent by transaction_id)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncSession

import otel_setup
from otel_setup import Attr
from services.common.app import SessionDep

from ... import store
from ...models import EvaluationRow
from ...schemas import Evaluation, Transaction

router = APIRouter(prefix="/v1/fds", tags=["evaluate"])
REPLAY_MARKER_TTL = 86_400.0


@router.post("/evaluate", response_model=Evaluation)
async def evaluate(txn: Transaction, request: Request, session: SessionDep) -> Evaluation:
    span = trace.get_current_span()
    span.set_attribute(Attr.FDS_TRANSACTION_ID, txn.transaction_id)
    state = request.app.state
    known = await _known(state, session, txn.transaction_id)
    if known is not None:  # a retry: the first answer stands and nothing is counted twice
        span.set_attribute("fds.replayed", True)
        return _annotate(span, known)
    running = state.writer.claim(txn.transaction_id)
    if running is not None:  # the same transaction is being evaluated right now: share its answer
        span.set_attribute("fds.replayed", True)
        return _annotate(span, await running)
    try:
        with state.fds_metrics.in_progress():
            outcome = await state.evaluator.evaluate(txn)
    except BaseException as exc:
        state.writer.settle(txn.transaction_id, None, exc)
        raise
    state.writer.add(store.row_values(txn, outcome.evaluation))
    state.writer.settle(txn.transaction_id, outcome.evaluation)
    await state.cache.set(_marker(txn.transaction_id), "1", REPLAY_MARKER_TTL)
    if state.fds_metrics.evaluated(outcome):
        otel_setup.capture_fds_performance_issue(outcome.evaluation.duration_ms, state.settings.sla_seconds * 1000,
                                                 txn.transaction_id, outcome.slowest_engine)
    return _annotate(span, outcome.evaluation)


def _marker(transaction_id: str) -> str:
    return f"fds:evaluated:{transaction_id}"


async def _known(state: Any, session: AsyncSession, transaction_id: str) -> Evaluation | None:
    """The stored answer for a transaction seen before: still queued for writing, or in the table.

    Only a transaction marked as evaluated (cache, one day) costs a database read; the unique key
    keeps a duplicate out of the table even when the marker is gone."""
    waiting = state.writer.waiting(transaction_id)
    if waiting is not None:
        return store.to_evaluation(EvaluationRow(**waiting))
    if await state.cache.get(_marker(transaction_id)) is None:
        return None
    row = await store.find(session, transaction_id)
    return store.to_evaluation(row) if row is not None else None


def _annotate(span: trace.Span, ev: Evaluation) -> Evaluation:
    span.set_attributes({
        Attr.FDS_RISK_SCORE: ev.risk_score,
        Attr.FDS_RISK_LEVEL: ev.risk_level,
        Attr.FDS_DECISION: ev.decision,
        Attr.FDS_DEGRADED: ev.degraded,
        "fds.duration_ms": ev.duration_ms,
    })
    return ev
