"""Write-behind of evaluations: the answer goes back at once, the row follows within milliseconds.

An evaluation's INSERT and COMMIT were the largest part of ``POST /v1/fds/evaluate`` after the
engines themselves. Rows now wait in memory and are inserted in batches, one transaction each,
every ``SHOPFDS_WRITE_INTERVAL_SECONDS`` or as soon as ``SHOPFDS_WRITE_BATCH`` rows are waiting,
and at shutdown. What that keeps:

- read-your-writes: every route that reads evaluations flushes first (``FlushedSessionDep``), so a
  label, a review or the stats always see the evaluations already answered;
- once only: a retry of a transaction still waiting, or in flight, gets the first answer; two
  concurrent calls for the same transaction in one process share one evaluation; across processes
  the claim in the shared cache (``evaluation.py``) gives a retry the first process's answer,
  and the unique key (``ON CONFLICT DO NOTHING``) keeps any duplicate out of the table;
- nothing silently lost: a failed batch stays queued and is retried; only past
  ``SHOPFDS_WRITE_MAX_PENDING`` waiting rows are new ones refused a place, and those are counted
  in ``fds_evaluation_writes_dropped_total{reason="queue_full"}`` (alert *FDS Evaluation Writes
  Dropped*), as are rows still waiting at shutdown (``reason="shutdown"``). A crash loses at most
  one interval of rows, whose decisions the callers already hold.
- a database outage is not hammered: after a failed batch the next attempt waits twice as long as
  the last (from ``SHOPFDS_WRITE_INTERVAL_SECONDS`` up to ``SHOPFDS_WRITE_RETRY_MAX_SECONDS``),
  half of it random so that several processes do not retry in step; new rows do not cut the
  wait short. Only the first failure of an outage goes to Sentry; each attempt logs a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any, Protocol

from sqlalchemy.dialects import postgresql, sqlite

import otel_setup
from services.common.db import Database

from .models import EvaluationRow
from .schemas import Evaluation

log = logging.getLogger("services.fds.writer")


class _Counter(Protocol):
    def add(self, amount: int, attributes: dict[str, str]) -> None: ...


class EvaluationWriter:
    def __init__(self, db: Database, interval: float, batch: int, max_pending: int, *,
                 retry_max: float = 5.0, dropped: _Counter | None = None) -> None:
        self.db = db
        self.interval = interval
        self.batch = batch
        self.max_pending = max_pending
        self.retry_max = max(retry_max, interval)
        self.dropped = dropped
        for reason in ("queue_full", "shutdown"):  # at 0 from the start, for the alert's increase()
            if dropped is not None:
                dropped.add(0, {"reason": reason})
        self.failures = 0  # consecutive failed batches: the backoff's exponent
        self._random = random.Random()
        self.pending: dict[str, dict[str, Any]] = {}
        self.in_flight: dict[str, dict[str, Any]] = {}
        self.running: dict[str, asyncio.Future[Evaluation]] = {}
        self.refused = 0
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # -- one evaluation per transaction ------------------------------------------------
    def waiting(self, transaction_id: str) -> dict[str, Any] | None:
        """The row of a transaction answered but not yet in the table, if any."""
        return self.pending.get(transaction_id) or self.in_flight.get(transaction_id)

    def claim(self, transaction_id: str) -> asyncio.Future[Evaluation] | None:
        """None: the caller evaluates (and must ``settle``); else the future of the running one."""
        running = self.running.get(transaction_id)
        if running is not None:
            return running
        self.running[transaction_id] = asyncio.get_running_loop().create_future()
        return None

    def settle(self, transaction_id: str, evaluation: Evaluation | None, error: BaseException | None = None) -> None:
        future = self.running.pop(transaction_id, None)
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
            future.exception()  # retrieved: a claim nobody waits on must not warn
        else:
            future.set_result(evaluation)  # type: ignore[arg-type]

    def add(self, values: dict[str, Any]) -> bool:
        # The rows of a batch being written count too: a failed batch comes back to ``pending``.
        if len(self.pending) + len(self.in_flight) >= self.max_pending:
            self.refused += 1
            self._count_dropped(1, "queue_full")
            log.error("evaluation write queue full (%d rows): row of %s not stored", self.max_pending,
                      values["transaction_id"])
            return False
        self.pending[values["transaction_id"]] = values
        if len(self.pending) >= self.batch:
            self._wake.set()
        return True

    # -- batches -------------------------------------------------------------------------
    async def flush(self) -> None:
        async with self._lock:
            if not self.pending:
                return
            self.in_flight, self.pending = self.pending, {}
            rows = list(self.in_flight.values())
            try:
                async with self.db.sessions() as session:
                    await session.execute(self._insert(), rows)
                    await session.commit()
            except BaseException as exc:  # cancelled too: the rows stay queued (the insert is idempotent)
                self.pending = {**self.in_flight, **self.pending}  # kept, retried next time
                if isinstance(exc, Exception):
                    log.warning("evaluation batch of %d rows not written (%s); retrying", len(rows),
                                type(exc).__name__)
                    if self.failures == 0:  # once per outage, not once per attempt
                        otel_setup.capture_exception_with_context(exc, component="fds-writer", rows=len(rows))
                raise
            finally:
                self.in_flight = {}

    def _insert(self) -> Any:
        dialect = postgresql if self.db.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(EvaluationRow.__table__).on_conflict_do_nothing(index_elements=["transaction_id"])

    def retry_delay(self) -> float:
        """Seconds before the next attempt after ``failures`` failed ones: exponential, capped, jittered."""
        ceiling = min(self.retry_max, self.interval * 2 ** min(self.failures, 30))
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)

    def _count_dropped(self, rows: int, reason: str) -> None:
        if self.dropped is not None and rows:
            self.dropped.add(rows, {"reason": reason})

    async def _run(self) -> None:
        while not self._closing:
            if self.failures:  # backing off: a full queue does not hurry a database that is down
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.retry_delay())
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # logged in flush; the rows stay queued
                self.failures += 1
            else:
                if self.failures:
                    log.warning("evaluation writes recovered after %d failed batches", self.failures)
                self.failures = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fds-evaluation-writer")

    async def close(self) -> None:
        if self._task is not None:
            # The loop ends by itself after its current batch: cancelling it mid-insert left that
            # connection holding SQLite's write lock while the last flush below tried to write
            # ("database is locked", every queued row left behind).
            self._closing = True
            self._wake.set()
            self._stop.set()
            with contextlib.suppress(Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self.flush()
        if self.pending:
            self._count_dropped(len(self.pending), "shutdown")
            log.error("%d evaluations not written at shutdown", len(self.pending))
