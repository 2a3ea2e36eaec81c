"""FDS test helpers: the app on a backend, transactions, staff tokens, a tiny CTI provider.

Unless a test says otherwise the ML service is absent (its URL is a closed port), so the ML
engine is ``unavailable`` and decisions come from rules and CTI: every evaluation is then
``degraded`` with ``ml_unavailable``, which is what the policy promises.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi import FastAPI

from otel_setup.settings import TelemetrySettings
from services.common.security import issue_token
from services.fds.app import create_app
from services.fds.settings import PACKAGE_DIR, Settings

from ..conftest import Backend

CLOSED_PORT_URL = "http://127.0.0.1:9"
_CARDS = itertools.count(1000)


def make_fds(backend: Backend, tmp_path: Path, *, ml_transport: httpx.AsyncBaseTransport | None = None,
             cti_transport: httpx.AsyncBaseTransport | None = None, **overrides: Any) -> FastAPI:
    overrides.setdefault("ml_url", CLOSED_PORT_URL)
    settings = Settings(**backend.overrides, **overrides)
    return create_app(settings, telemetry_settings=TelemetrySettings(trace_store_dir=str(tmp_path / "traces")),
                      ml_transport=ml_transport, cti_transport=cti_transport)


def txn(**changes: Any) -> dict[str, Any]:
    """An ordinary Korean card payment (a new card each time); tests change what their pattern needs."""
    body: dict[str, Any] = {
        "transaction_id": f"t-{uuid.uuid4().hex[:16]}", "order_id": f"o-{uuid.uuid4().hex[:8]}",
        "user_id": "user-1", "amount": 45_000, "currency": "KRW", "payment_method": "card",
        "card_bin": "411111", "card_last4": f"{next(_CARDS) % 10_000:04d}",
        "ip_address": "10.1.2.3", "device_id": "device-1",
        "email": "kim@example.com", "billing_country": "KR", "shipping_country": "KR",
        "created_at": "2026-11-26T14:30:00+09:00",
    }
    body.update(changes)
    return body


def staff(app: FastAPI, role: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(app.state.settings.jwt_secret, role, role, 300)}"}


def rule_book(tmp_path: Path, edit: Any) -> str:
    """A copy of the shipped rule book changed by ``edit(data)``; returns its path."""
    data = yaml.safe_load((PACKAGE_DIR / "rules.yaml").read_text())
    edit(data)
    path = tmp_path / f"rules-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper)))
    return str(path)


@dataclass
class Provider:
    """A CTI provider on 127.0.0.1: ``GET /ip/{ip}`` answers ``{"score": scores.get(ip, 0)}``."""

    url: str = ""
    delay: float = 0.0
    status: int = 200
    scores: dict[str, float] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await reader.readline()).decode()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            ip = request_line.split()[1].rsplit("/", 1)[-1]
            self.hits.append(ip)
            await asyncio.sleep(self.delay)
            body = json.dumps({"score": self.scores.get(ip, 0.0)}).encode()
            writer.write(f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (ConnectionError, IndexError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def provider(**kwargs: Any) -> AsyncIterator[Provider]:
    p = Provider(**kwargs)
    server = await asyncio.start_server(p.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    p.url = f"http://127.0.0.1:{port}"
    try:
        yield p
    finally:
        server.close()
        await server.wait_closed()
