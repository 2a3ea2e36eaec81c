"""Building the admin app for tests, tokens, and reading its counters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from otel_setup.settings import TelemetrySettings
from services.admin.app import create_app
from services.admin.settings import Settings
from services.common.security import issue_token
from tests.conftest import samples

from ..conftest import Backend

PASSWORD = "correct horse battery staple"
# Nothing listens on port 1: a call there fails at once, as an upstream that is down.
DEAD = "http://127.0.0.1:1"


def make_admin(backend: Backend, tmp_path: Path, *, fds_transport: httpx.AsyncBaseTransport | None = None,
               ecommerce_transport: httpx.AsyncBaseTransport | None = None, **extra: Any) -> FastAPI:
    """The admin app (build it last: its telemetry is then the active one)."""
    extra.setdefault("fds_url", DEAD)
    extra.setdefault("ecommerce_url", DEAD)
    settings = Settings(**backend.overrides, admin_password=PASSWORD, **extra)
    return create_app(settings, telemetry_settings=TelemetrySettings(trace_store_dir=str(tmp_path / "traces")),
                      fds_transport=fds_transport, ecommerce_transport=ecommerce_transport)


def bearer(app: FastAPI, role: str, secret: str | None = None) -> dict[str, str]:
    token = issue_token(secret or app.state.settings.jwt_secret, f"test-{role}", role, 300)
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def client_from(app: FastAPI, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests come from ``ip`` (the app's lifespan must already be running)."""
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def counter(app: FastAPI, family: str, **labels: str) -> float:
    """The value of ``<family>_total`` for the series with exactly these labels (0 if absent)."""
    for sample in samples(app.state.telemetry, family):
        if sample.name == f"{family}_total" and sample.labels == labels:
            return float(sample.value)
    return 0.0
