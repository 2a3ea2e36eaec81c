"""An FDS-shaped app for ``shopfds demo`` while the real services are being built.

Each evaluation runs three engines concurrently, each in a ``fds.engine.<name>`` span; the
engine durations on ``/metrics`` are derived from those spans by ``otel_setup``. A share of
CTI lookups (``SHOPFDS_DEMO_CTI_SLOW_RATE``, default 0.05) takes 120-180 ms, like a slow
threat-intel provider, so the SLA panel, the slow buckets and their exemplars have something
to show.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

from fastapi import FastAPI
from pydantic import BaseModel, Field

import otel_setup

app = FastAPI(title="ShopFDS demo FDS")
telemetry = otel_setup.configure("fds", app=app)
_SLOW_RATE = float(os.environ.get("SHOPFDS_DEMO_CTI_SLOW_RATE", "0.05"))
_inst = telemetry.instruments


class Txn(BaseModel):
    transaction_id: str
    amount: float = Field(gt=0)


async def _engine(name: str, low_ms: float, high_ms: float, slow: bool = False) -> float:
    with telemetry.tracer.start_as_current_span(f"fds.engine.{name}", attributes={"fds.engine": name}):
        await asyncio.sleep((random.uniform(120, 180) if slow else random.uniform(low_ms, high_ms)) / 1000)
        return random.uniform(0, 40)


@app.post("/v1/fds/evaluate")
async def evaluate(txn: Txn) -> dict[str, object]:
    started = time.perf_counter()
    rule, ml, cti = await asyncio.gather(
        _engine("rule", 0.5, 3), _engine("ml", 1, 6), _engine("cti", 1, 8, random.random() < _SLOW_RATE)
    )
    score = min(100.0, 0.4 * rule + 0.4 * ml + 0.2 * cti + (30 if txn.amount > 1_000_000 else 0))
    level = "low" if score < 30 else "medium" if score < 60 else "high"
    decision = {"low": "approve", "medium": "additional_auth", "high": "hold"}[level]
    seconds = time.perf_counter() - started
    _inst["fds_evaluation_duration_seconds"].record(seconds)
    _inst["fds_evaluations_total"].add(1, {"risk_level": level, "decision": decision})
    _inst["fds_decisions_total"].add(1, {"decision": decision})
    _inst["fds_risk_score_distribution"].record(score)
    if seconds > 0.1:
        _inst["fds_sla_violations_total"].add(1)
    return {"risk_score": round(score, 1), "risk_level": level, "decision": decision}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
