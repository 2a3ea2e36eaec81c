"""``EvaluationService``: a transaction scored once per transaction_id, whichever process gets it.

A retry is answered with the first answer and counted nowhere: from this process's write-behind
queue, from the claim in the shared cache (Redis with several processes; another process's answer
is waited for while it runs), else from the table. The table's unique key is the last guard.

The app builds one at start (``app.py``); ``POST /v1/fds/evaluate`` reaches it through
``EvaluationDep`` (``api/deps.py``) and only puts the answer on its span.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

import otel_setup
from services.common.cache import Cache

from . import store
from .evaluator import Evaluator, Outcome
from .metrics import FdsMetrics
from .models import EvaluationRow
from .schemas import Evaluation, Transaction
from .settings import Settings
from .writer import EvaluationWriter

REPLAY_MARKER_TTL = 86_400.0
# Across processes (workers, replicas) a transaction is claimed in the shared cache before it is
# evaluated. A process that dies mid-evaluation frees it after CLAIM_TTL; the answer then stays
# under the claim for ANSWER_TTL, long enough for the write-behind to put the row in the table.
CLAIM_TTL = 5.0
ANSWER_TTL = 60.0
RUNNING = "running"
POLL_SECONDS = 0.003


@dataclass(frozen=True)
class Answer:
    """``replayed``: the first answer to this transaction given again, counted nowhere this time."""

    evaluation: Evaluation
    replayed: bool


class EvaluationService:
    def __init__(self, evaluator: Evaluator, writer: EvaluationWriter, cache: Cache, metrics: FdsMetrics,
                 settings: Settings) -> None:
        self.evaluator = evaluator
        self.writer = writer
        self.cache = cache
        self.metrics = metrics
        self.settings = settings

    async def evaluate(self, txn: Transaction, session: AsyncSession, *, asked_before: bool = False) -> Answer:
        """``asked_before``: the caller may have asked for this transaction already (ecommerce's
        reconciler asks again for an order whose verdict was lost): the table is read even without
        a replay marker, which a Redis that lost its data no longer holds, so the first answer is
        given again instead of a second evaluation counted twice."""
        waiting = self.writer.waiting(txn.transaction_id)
        if waiting is not None:  # a retry of one answered here, not yet written: the first answer stands
            return Answer(store.to_evaluation(EvaluationRow(**waiting)), replayed=True)
        running = self.writer.claim(txn.transaction_id)
        if running is not None:  # the same transaction is being evaluated in this process: share its answer
            return Answer(await running, replayed=True)
        try:
            evaluation, outcome = await self._once(session, txn, asked_before)
        except BaseException as exc:
            self.writer.settle(txn.transaction_id, None, exc)
            raise
        self.writer.settle(txn.transaction_id, evaluation)
        if outcome is None:  # answered before, here or by another process: nothing is counted twice
            return Answer(evaluation, replayed=True)
        if self.metrics.evaluated(outcome):
            otel_setup.capture_fds_performance_issue(outcome.evaluation.duration_ms, self.settings.sla_seconds * 1000,
                                                     txn.transaction_id, outcome.slowest_engine)
        return Answer(evaluation, replayed=False)

    async def _once(self, session: AsyncSession, txn: Transaction,
                    asked_before: bool = False) -> tuple[Evaluation, Outcome | None]:
        """The answer and, when this call evaluated it, the outcome; else the answer of whichever
        process evaluated the transaction first (waited for when it is still running)."""
        key, marker = _claim(txn.transaction_id), _marker(txn.transaction_id)
        # The claim and the replay marker in one round trip: a new transaction costs one.
        while (found := await self.cache.claim_peek(key, RUNNING, CLAIM_TTL, marker))[0] is not None:
            if found[0] != RUNNING:
                return Evaluation.model_validate_json(found[0]), None
            await asyncio.sleep(POLL_SECONDS)
        try:
            known = await _stored(session, txn.transaction_id, evaluated_before=asked_before or found[1] is not None)
            if known is not None:
                await self.cache.set(key, known.model_dump_json(), ANSWER_TTL)
                return known, None
            with self.metrics.in_progress():
                outcome = await self.evaluator.evaluate(txn)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.cache.delete(key)  # free it for the caller's retry
            raise
        self.writer.add(store.row_values(txn, outcome.evaluation))
        await self.cache.set_many([(key, outcome.evaluation.model_dump_json(), ANSWER_TTL),
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
