"""A tiny instrumented app for the report tests: records known values into the real catalog.

``REPORT_APP_SERVICE=fds`` (default) or ``ecommerce`` picks the catalog. The FDS route records
one evaluation of a given duration inside the server span (so it carries an exemplar) and engine
spans with exact start and end times (so the span-derived engine histograms get known values).
"""

from __future__ import annotations

import os
import time

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from opentelemetry import trace

import otel_setup

SERVICE = os.environ.get("REPORT_APP_SERVICE", "fds")
app = FastAPI()
telemetry = otel_setup.configure(SERVICE, app=app)
inst = telemetry.instruments


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/evaluate")
async def evaluate(seconds: float, rule: float, ml: float, cti: float, decision: str = "approve",
                   risk_level: str = "low") -> dict[str, str]:
    """One evaluation of ``seconds``, with engine spans of exactly rule/ml/cti seconds."""
    start = time.time_ns()
    for engine, duration in (("rule", rule), ("ml", ml), ("cti", cti)):
        span = telemetry.tracer.start_span(f"fds.engine.{engine}", attributes={"fds.engine": engine},
                                           start_time=start)
        span.end(end_time=start + round(duration * 1e9))
    inst["fds_evaluation_duration_seconds"].record(seconds)
    inst["fds_decisions_total"].add(1, {"decision": decision})
    inst["fds_risk_level_distribution_total"].add(1, {"risk_level": risk_level})
    if seconds > 0.1:
        inst["fds_sla_violations_total"].add(1)
    return {"trace_id": format(trace.get_current_span().get_span_context().trace_id, "032x")}


@app.post("/outcomes")
async def outcomes(tp: int, fp: int, fn: int) -> dict[str, str]:
    for name, count in (("true_positives", tp), ("false_positives", fp), ("false_negatives", fn)):
        inst[f"fds_{name}_total"].add(count)
    return {"status": "ok"}


@app.post("/quality")
async def quality(tp: int, fp: int, fn: int) -> dict[str, str]:
    """What the FDS's gauges say after these labels in its database (lifetime window)."""
    for outcome, count in (("tp", tp), ("fp", fp), ("tn", 0), ("fn", fn)):
        inst["fds_quality_labels"].set(count, {"window": "lifetime", "outcome": outcome})
    inst["fds_precision"].set(tp / (tp + fp))
    inst["fds_recall"].set(tp / (tp + fn))
    return {"status": "ok"}


@app.get("/v1/products")
async def products() -> dict[str, list[str]]:
    return {"items": []}


@app.get("/v1/boom")
async def boom() -> JSONResponse:
    return JSONResponse({"detail": "boom"}, status_code=500)


@app.post("/v1/orders")
async def order(hits: int = 3, misses: int = 1) -> dict[str, str]:
    inst["ecommerce_orders_total"].add(1, {"status": "pending"})
    for result, count in (("hit", hits), ("miss", misses)):
        inst["ecommerce_cache_operations_total"].add(count, {"operation": "get", "result": result})
    inst["ecommerce_cache_hit_ratio"].set(hits / (hits + misses))
    return {"status": "pending"}
