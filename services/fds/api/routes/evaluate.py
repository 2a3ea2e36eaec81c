"""POST /v1/fds/evaluate: score a transaction, once per transaction_id whichever process gets it.

A retry is answered with the first answer and counted nowhere: from this process's write-behind
queue, from the claim in the shared cache (Redis with several processes; another process's answer
is waited for while it runs), else from the table. The table's unique key is the last guard.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, Request
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncSession

import otel_setup
from otel_setup import Attr
from services.common.app import SessionDep

from ... import store
from ...evaluator import Outcome
from ...models import EvaluationRow
from ...schemas import Evaluation, Transaction

router = APIRouter(prefix="/v1/fds", tags=["evaluate"])
REPLAY_MARKER_TTL = 86_400.0
# Across processes (workers, replicas) a transaction is claimed in the shared cache before it is
# evaluated. A process that dies mid-evaluation frees it after CLAIM_TTL; the answer then stays
# under the claim for ANSWER_TTL, long enough for the write-behind to put the row in the table.
CLAIM_TTL = 5.0
ANSWER_TTL = 60.0
RUNNING = "running"
POLL_SECONDS = 0.003


@router.post("/evaluate", response_model=Evaluation)
async def evaluate(txn: Transaction, request: Request, session: SessionDep) -> Evaluation:
    span = trace.get_current_span()
    span.set_attribute(Attr.FDS_TRANSACTION_ID, txn.transaction_id)
    state = request.app.state
    waiting = state.writer.waiting(txn.transaction_id)
    if waiting is not None:  # a retry of one answered here, not yet written: the first answer stands
        return _replayed(span, store.to_evaluation(EvaluationRow(**waiting)))
    running = state.writer.claim(txn.transaction_id)
    if running is not None:  # the same transaction is being evaluated in this process: share its answer
        return _replayed(span, await running)
    try:
        evaluation, outcome = await _once(state, session, txn)
    except BaseException as exc:
        state.writer.settle(txn.transaction_id, None, exc)
        raise
    state.writer.settle(txn.transaction_id, evaluation)
    if outcome is None:  # answered before, here or by another process: nothing is counted twice
        return _replayed(span, evaluation)
    if state.fds_metrics.evaluated(outcome):
        otel_setup.capture_fds_performance_issue(outcome.evaluation.duration_ms, state.settings.sla_seconds * 1000,
                                                 txn.transaction_id, outcome.slowest_engine)
    return _annotate(span, evaluation)


async def _once(state: Any, session: AsyncSession, txn: Transaction) -> tuple[Evaluation, Outcome | None]:
    """The answer and, when this call evaluated it, the outcome; else the answer of whichever
    process evaluated the transaction first (waited for when it is still running)."""
    key, marker = _claim(txn.transaction_id), _marker(txn.transaction_id)
    # The claim and the replay marker in one round trip: a new transaction costs one.
    while (found := await state.cache.claim_peek(key, RUNNING, CLAIM_TTL, marker))[0] is not None:
        if found[0] != RUNNING:
            return Evaluation.model_validate_json(found[0]), None
        await asyncio.sleep(POLL_SECONDS)
    try:
        known = await _stored(session, txn.transaction_id, evaluated_before=found[1] is not None)
        if known is not None:
            await state.cache.set(key, known.model_dump_json(), ANSWER_TTL)
            return known, None
        with state.fds_metrics.in_progress():
            outcome = await state.evaluator.evaluate(txn)
    except BaseException:
        with contextlib.suppress(Exception):
            await state.cache.delete(key)  # free it for the caller's retry
        raise
    state.writer.add(store.row_values(txn, outcome.evaluation))
    await state.cache.set_many([(key, outcome.evaluation.model_dump_json(), ANSWER_TTL),
                                (marker, "1", REPLAY_MARKER_TTL)])
    return outcome.evaluation, outcome


def _claim(transaction_id: str) -> str:
    return f"fds:claim:{transaction_id}"


def _marker(transaction_id: str) -> str:
    return f"fds:evaluated:{transaction_id}"


async def _stored(session: AsyncSession, transaction_id: str, evaluated_before: bool) -> Evaluation | None:
    """The answer in the table for a transaction seen before.

    Only a transaction marked as evaluated (cache, one day) costs a database read; the unique key
    keeps a duplicate out of the table even when the marker is gone."""
    if not evaluated_before:
        return None
    row = await store.find(session, transaction_id)
    return store.to_evaluation(row) if row is not None else None


def _replayed(span: trace.Span, ev: Evaluation) -> Evaluation:
    span.set_attribute(Attr.FDS_REPLAYED, True)
    return _annotate(span, ev)


def _annotate(span: trace.Span, ev: Evaluation) -> Evaluation:
    span.set_attributes({
        Attr.FDS_RISK_SCORE: ev.risk_score,
        Attr.FDS_RISK_LEVEL: ev.risk_level,
        Attr.FDS_DECISION: ev.decision,
        Attr.FDS_DEGRADED: ev.degraded,
        Attr.FDS_DURATION_MS: ev.duration_ms,
    })
    return ev
