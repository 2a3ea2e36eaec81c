"""The FDS's write-behind across a real database outage (a TCP proxy in front of PostgreSQL, cut).

Below ``SHOPFDS_WRITE_MAX_PENDING`` nothing answered during the outage is lost and each row is
written once after it; the writer backs off instead of retrying at its batch interval (attempts
counted from its own warnings); past the bound the rows refused are counted in
``fds_evaluation_writes_dropped_total``, the metric the *FDS Evaluation Writes Dropped* alert reads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.fds.models import EvaluationRow
from tests.conftest import samples
from tests.reliability.test_dependencies import POSTGRES_ONLY, postgres_proxy
from tests.services.conftest import Backend, serve
from tests.services.conftest import backend as backend  # the fixture: embedded, and PostgreSQL + Redis
from tests.services.fds.conftest import make_fds, txn

OUTAGE_S = 2.0
INTERVAL_S = 0.05  # without backoff: one attempt per interval, some 40 in the outage


class _Attempts(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.failed = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "not written" in record.getMessage():
            self.failed += 1


async def _rows(app: Any) -> list[str]:
    async with app.state.db.sessions() as session:
        return list((await session.execute(select(EvaluationRow.transaction_id))).scalars())


async def _until(check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


def _dropped(app: Any) -> dict[str, float]:
    return {s.labels["reason"]: s.value for s in samples(app.state.telemetry, "fds_evaluation_writes_dropped")
            if s.name.endswith("_total") and s.value}


@POSTGRES_ONLY
async def test_an_outage_below_the_bound_loses_nothing_and_is_retried_with_backoff(
        backend: Backend, tmp_path: Path) -> None:
    attempts = _Attempts()
    logging.getLogger("services.fds.writer").addHandler(attempts)
    try:
        async with postgres_proxy(backend) as (pg, through):
            app = make_fds(through, tmp_path, write_interval_seconds=INTERVAL_S, write_retry_max_seconds=1.0,
                           write_max_pending=1000, database_connect_timeout_seconds=0.5)
            async with serve(app) as client:
                await pg.cut()
                bodies = [txn(user_id=f"u{i}") for i in range(30)]
                started = time.monotonic()
                for body in bodies:  # spread over the outage: new rows arrive while it backs off
                    assert (await client.post("/v1/fds/evaluate", json=body)).status_code == 200
                    await asyncio.sleep(OUTAGE_S / len(bodies))
                await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - started)))
                failed_in_outage = attempts.failed
                await pg.restore()

                async def all_written() -> bool:
                    return len(await _rows(app)) >= len(bodies)

                await _until(all_written)
                stored = await _rows(app)
                dropped = _dropped(app)
    finally:
        logging.getLogger("services.fds.writer").removeHandler(attempts)
    assert sorted(stored) == sorted(b["transaction_id"] for b in bodies)  # each once, none lost
    assert dropped.get("queue_full", 0) == 0
    # 0.05, 0.1, 0.2, 0.4, 0.8, 1.0 ... s between attempts: about 6 in 2 s, not 40.
    assert 1 <= failed_in_outage <= 10, failed_in_outage


@POSTGRES_ONLY
async def test_past_the_bound_the_rows_refused_are_counted(backend: Backend, tmp_path: Path) -> None:
    async with postgres_proxy(backend) as (pg, through):
        app = make_fds(through, tmp_path, write_interval_seconds=INTERVAL_S, write_retry_max_seconds=0.5,
                       write_max_pending=5, database_connect_timeout_seconds=0.5)
        async with serve(app) as client:
            await pg.cut()
            bodies = [txn(user_id=f"u{i}") for i in range(8)]
            answers = [await client.post("/v1/fds/evaluate", json=body) for body in bodies]
            dropped_during = _dropped(app)
            await pg.restore()

            async def written() -> bool:
                return len(await _rows(app)) >= 5

            await _until(written)
            stored = await _rows(app)
    assert [a.status_code for a in answers] == [200] * 8  # decisions are never refused
    assert sorted(stored) == sorted(b["transaction_id"] for b in bodies[:5])
    assert dropped_during == {"queue_full": 3}


@pytest.mark.parametrize("failures, low, high", [(0, 0.025, 0.05), (1, 0.05, 0.1), (3, 0.2, 0.4),
                                                 (10, 0.5, 1.0), (50, 0.5, 1.0)])
def test_the_backoff_doubles_is_jittered_and_capped(failures: int, low: float, high: float) -> None:
    from services.fds.writer import EvaluationWriter

    writer = EvaluationWriter(None, INTERVAL_S, 10, 10, retry_max=1.0)  # type: ignore[arg-type]
    writer.failures = failures
    delays = [writer.retry_delay() for _ in range(200)]
    assert low <= min(delays) and max(delays) <= high
    assert len(set(delays)) > 100  # jittered, so processes do not retry in step


