"""The ML engine against the real ML service, run in-process (its ASGI app as the transport)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from otel_setup.settings import TelemetrySettings
from services.ml.app import create_app as create_ml_app
from services.ml.settings import Settings as MlSettings

from ..conftest import Backend, serve
from .conftest import make_fds, staff, txn


@asynccontextmanager
async def ml_and_fds(backend: Backend, tmp_path: Path, **fds: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient,
                                                                                          httpx.AsyncClient]]:
    """The ML service (a small default model trained and deployed at its start), then the FDS
    pointing at it; the FDS is built last so that its telemetry is the active one."""
    ml_app = create_ml_app(MlSettings(**backend.overrides, default_samples=2_000),
                           telemetry_settings=TelemetrySettings(trace_store_dir=str(tmp_path / "ml-traces")))
    async with serve(ml_app) as ml_client:
        fds_app = make_fds(backend, tmp_path, ml_url="http://ml", ml_transport=httpx.ASGITransport(app=ml_app), **fds)
        async with serve(fds_app) as fds_client:
            yield fds_app, fds_client, ml_client


async def test_ml_engine_scores_with_the_deployed_model(backend: Backend, tmp_path) -> None:
    async with ml_and_fds(backend, tmp_path) as (_app, client, ml):
        deployed = (await ml.get("/v1/ml/models")).json()["deployed_version"]
        ev = (await client.post("/v1/fds/evaluate", json=txn())).json()
    assert deployed is not None
    assert ev["engines"]["ml"]["status"] == "ok" and ev["model_version"] == deployed
    assert 0 <= ev["engines"]["ml"]["score"] < 50
    # All three engines answered and no provider is configured: nothing is degraded.
    assert ev["degraded"] is False and ev["degraded_reason"] is None
    assert ev["decision"] == "approve"


async def test_card_testing_burst_raises_the_ml_score(backend: Backend, tmp_path) -> None:
    async with ml_and_fds(backend, tmp_path) as (_app, client, _ml):
        ordinary = (await client.post("/v1/fds/evaluate", json=txn(user_id="calm"))).json()
        burst = [(await client.post("/v1/fds/evaluate", json=txn(amount=900, card_last4="4242", user_id="probe",
                                                                  device_id=f"d{i}", shipping_country="US"))).json()
                 for i in range(6)]
    last = burst[-1]
    assert last["engines"]["ml"]["score"] > ordinary["engines"]["ml"]["score"]
    assert "ml_high_risk" in last["risk_factors"] and "card_testing" in last["risk_factors"]
    assert last["decision"] in ("hold", "block")


async def test_a_new_deployment_is_picked_up(backend: Backend, tmp_path) -> None:
    async with ml_and_fds(backend, tmp_path) as (app, client, ml):
        source = app.state.model_source
        before = source.version
        unchanged = await source.refresh()  # If-None-Match: 304, nothing reloaded
        trained = await ml.post("/v1/ml/train", json={"samples": 1_000, "seed": 11, "deploy": True},
                                headers=staff(app, "service"))
        reloaded = await source.refresh()
        ev = (await client.post("/v1/fds/evaluate", json=txn())).json()
    assert trained.status_code == 201
    new = trained.json()["version"]
    assert (unchanged, reloaded) == (False, True)
    assert before != new and source.version == new == ev["model_version"]
