"""Real Prometheus (exemplar storage on) scrapes an instrumented app; exemplars resolve."""

import time

import httpx

from otel_setup.trace_store import iter_records
from tests.procs import prometheus, uvicorn_app


def _exemplars(prom: str, query: str) -> list[dict]:
    now = time.time()
    response = httpx.get(f"{prom}/api/v1/query_exemplars",
                         params={"query": query, "start": now - 600, "end": now + 60})
    response.raise_for_status()
    return [e for series in response.json()["data"] for e in series["exemplars"]]


def test_prometheus_exemplars_equal_exported_trace_ids(tmp_path):
    store = tmp_path / "traces"
    env = {"SHOPFDS_TRACE_STORE_DIR": str(store), "OTEL_BSP_SCHEDULE_DELAY": "100"}
    with uvicorn_app("tests.apps.engine_app:app", env, tmp_path / "app.log") as app, \
            prometheus([app], tmp_path) as prom:
        for i in range(12):
            httpx.post(f"{app}/v1/fds/evaluate", params={"slow_cti_ms": 120 if i % 3 == 0 else 0})
        deadline = time.monotonic() + 30
        found: list[dict] = []
        http: list[dict] = []
        while time.monotonic() < deadline:
            found = _exemplars(prom, "fds_cti_engine_duration_seconds_bucket")
            http = _exemplars(prom, "fds_http_request_duration_seconds_bucket")
            if found and http:
                break
            time.sleep(0.5)

    assert found, "Prometheus stored no exemplars for the CTI engine histogram"
    assert http, "Prometheus stored no exemplars for the HTTP latency histogram"
    spans = {(r["trace_id"], r["span_id"]): r for r in iter_records(store)}
    for exemplar in found + http:
        key = (exemplar["labels"]["trace_id"], exemplar["labels"]["span_id"])
        assert key in spans, f"exemplar {key} resolves to no stored span"
    slow = [e for e in found if float(e["value"]) >= 0.1]
    assert slow and all(spans[(e["labels"]["trace_id"], e["labels"]["span_id"])]["name"]
                        == "fds.engine.cti" for e in slow)
