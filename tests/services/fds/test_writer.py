"""Evaluations are written behind in batches: nothing answered is lost, nothing is counted twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select

from services.fds.models import EvaluationRow

from ...conftest import samples
from ..conftest import Backend, serve
from .conftest import make_fds, staff, txn


async def _rows(app) -> int:  # type: ignore[no-untyped-def]
    async with app.state.db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(EvaluationRow)) or 0)


async def test_an_answer_is_readable_at_once_and_stored_by_the_next_batch(backend: Backend, tmp_path: Path) -> None:
    app = make_fds(backend, tmp_path, write_interval_seconds=5.0)  # no timed batch during the test
    async with serve(app) as client:
        body = txn()
        answer = (await client.post("/v1/fds/evaluate", json=body)).json()
        assert await _rows(app) == 0  # still waiting for its batch
        read = await client.get(f"/v1/fds/transactions/{body['transaction_id']}", headers=staff(app))
        assert read.status_code == 200 and read.json()["decision"] == answer["decision"]
        assert await _rows(app) == 1  # the read flushed first


async def test_concurrent_calls_for_one_transaction_share_one_evaluation(backend: Backend, tmp_path: Path) -> None:
    app = make_fds(backend, tmp_path)
    body = txn()
    async with serve(app) as client:
        answers = await asyncio.gather(*(client.post("/v1/fds/evaluate", json=body) for _ in range(5)))
        again = await client.post("/v1/fds/evaluate", json=body)
        stats = (await client.get("/v1/fds/stats", headers=staff(app))).json()
    assert len({a.text for a in answers} | {again.text}) == 1
    assert stats["evaluations"] == 1
    counted = [s.value for s in samples(app.state.telemetry, "fds_decisions") if s.name.endswith("_total")]
    assert sum(counted) == 1


async def test_rows_waiting_at_shutdown_are_written(backend: Backend, tmp_path: Path) -> None:
    first = make_fds(backend, tmp_path, write_interval_seconds=5.0)
    bodies = [txn() for _ in range(3)]
    async with serve(first) as client:
        for body in bodies:
            assert (await client.post("/v1/fds/evaluate", json=body)).status_code == 200
    second = make_fds(backend, tmp_path)
    async with serve(second) as client:
        found = [await client.get(f"/v1/fds/transactions/{b['transaction_id']}", headers=staff(second))
                 for b in bodies]
    assert [r.status_code for r in found] == [200, 200, 200]


async def test_shutdown_during_a_batch_writes_every_row(backend: Backend, tmp_path: Path) -> None:
    # Batches of 5 are inserted while answers keep coming; the service stops right after the last
    # answer, usually while a batch is being inserted: that batch and the rest must still land.
    for round_ in range(3):
        app = make_fds(backend, tmp_path / str(round_), write_interval_seconds=5.0, write_batch=5)
        bodies = [txn() for _ in range(40)]
        async with serve(app) as client:
            answers = await asyncio.gather(*(client.post("/v1/fds/evaluate", json=b) for b in bodies))
        assert [a.status_code for a in answers] == [200] * 40
        reopened = make_fds(backend, tmp_path / str(round_))
        async with serve(reopened), reopened.state.db.sessions() as session:
            ids = [b["transaction_id"] for b in bodies]
            stored = await session.scalar(select(func.count()).select_from(EvaluationRow)
                                          .where(EvaluationRow.transaction_id.in_(ids)))
        assert stored == 40
