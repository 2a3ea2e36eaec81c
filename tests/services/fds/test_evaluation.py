"""One answer per transaction (services/fds/evaluation.py): a retry is the first answer, marked
``fds.replayed`` on its server span and counted nowhere, in this process or in another one."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.common.http import RETRY_HEADER
from tests.conftest import samples

from ..conftest import Backend, serve
from .conftest import make_fds, staff, txn


def _recorded(app: FastAPI) -> InMemorySpanExporter:
    memory = InMemorySpanExporter()
    app.state.telemetry.add_span_exporter("memory", memory)
    return memory


def _server_spans(app: FastAPI, memory: InMemorySpanExporter) -> list[ReadableSpan]:
    app.state.telemetry.force_flush()
    return [s for s in memory.get_finished_spans() if s.name == "POST /v1/fds/evaluate"]


def _counted(app: FastAPI) -> float:
    return sum(s.value for s in samples(app.state.telemetry, "fds_evaluations") if s.name == "fds_evaluations_total")


async def test_retries_are_marked_replayed_with_the_first_answer(backend: Backend, tmp_path) -> None:
    app = make_fds(backend, tmp_path, write_interval_seconds=5.0)  # no timed batch during the test
    memory = _recorded(app)
    body = txn(email="x@mailinator.com")
    async with serve(app) as client:
        first = (await client.post("/v1/fds/evaluate", json=body)).json()
        waiting = (await client.post("/v1/fds/evaluate", json=body)).json()  # from the write-behind queue
        await client.get("/v1/fds/stats", headers=staff(app))  # the read flushes: the row is in the table
        claimed = (await client.post("/v1/fds/evaluate", json=body)).json()  # from the claim in the cache
    assert waiting == claimed == first
    spans = _server_spans(app, memory)
    assert [(s.attributes or {}).get("fds.replayed") for s in spans] == [None, True, True]
    for span in spans:
        attrs = span.attributes or {}
        assert attrs["fds.transaction_id"] == body["transaction_id"]
        assert (attrs["fds.risk_score"], attrs["fds.decision"], attrs["fds.duration_ms"]) == (
            first["risk_score"], "additional_auth", first["duration_ms"])
    assert _counted(app) == 1


async def test_another_process_answers_a_retry_with_the_first_answer(backend: Backend, tmp_path) -> None:
    if backend.name == "embedded":
        pytest.skip("each process's in-process cache is its own: the claim is shared through Redis")
    # Two FDS instances on one database and one Redis stand for two workers. In one test process
    # they share the telemetry (one per service name): the spans and counts below are both apps'.
    first, second = make_fds(backend, tmp_path), make_fds(backend, tmp_path)
    memory = _recorded(second)
    body = txn(email="x@mailinator.com")
    async with serve(first) as one, serve(second) as other:
        answer = (await one.post("/v1/fds/evaluate", json=body)).json()
        again = (await other.post("/v1/fds/evaluate", json=body)).json()
    assert again == answer
    spans = sorted(_server_spans(second, memory), key=lambda s: s.start_time or 0)
    assert [(s.attributes or {}).get("fds.replayed") for s in spans] == [None, True]
    assert _counted(second) == 1


async def test_a_retry_after_the_cache_lost_its_markers_is_the_first_answer_from_the_table(
        backend: Backend, tmp_path) -> None:
    app = make_fds(backend, tmp_path)
    body = txn(email="x@mailinator.com")
    async with serve(app) as client:
        first = (await client.post("/v1/fds/evaluate", json=body)).json()
        await client.get("/v1/fds/stats", headers=staff(app))  # the read flushes: the row is in the table
        for key in (f"fds:claim:{body['transaction_id']}", f"fds:evaluated:{body['transaction_id']}"):
            await app.state.cache.delete(key)  # as a Redis restarted without persistence leaves it
        again = await client.post("/v1/fds/evaluate", json=body, headers={RETRY_HEADER: "true"})
    assert again.status_code == 200 and again.json() == first
    assert _counted(app) == 1
