"""Real server, httpx client, SQLAlchemy (SQLite and PostgreSQL) and Redis spans carry the stable
HTTP and database semantic conventions by default, and only those; a deployment's own
``OTEL_SEMCONV_STABILITY_OPT_IN`` is used as it is by the contrib instrumentations (client, SQL,
Redis); the server span, made by otel_setup's middleware, always carries the stable names."""

from __future__ import annotations

import os
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from otel_setup.catalog import Attr
from services.common import http
from services.common.cache import RedisCache
from services.common.db import Database

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
OLD = {"http.method", "http.status_code", "http.target", "http.url", "http.scheme", "db.statement",
       "db.system", "db.name", "net.peer.name", "net.peer.port", "net.host.name"}


def _apps(db_url: str) -> FastAPI:
    upstream = FastAPI()

    @upstream.get("/v1/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    app = FastAPI()

    @app.get("/v1/items/{item_id}")
    async def item(item_id: str) -> dict[str, int]:
        db = Database(db_url)
        cache = RedisCache("redis://127.0.0.1:6379/0", prefix=f"semconv:{uuid.uuid4().hex[:6]}:")
        client = http.client("http://upstream", 5, transport=httpx.ASGITransport(app=upstream))
        try:
            async with db.sessions() as session:
                value = (await session.execute(text("SELECT length(:v)"), {"v": item_id})).scalar_one()
            await cache.set("k", item_id, 5)
            assert (await client.get("/v1/ping")).status_code == 200
        finally:
            await client.aclose()
            await cache.close()
            await db.dispose()
        return {"length": int(value)}

    return app


async def _spans(make_telemetry: Any, db_url: str, **overrides: Any) -> dict[str, Any]:
    app = _apps(db_url)
    telemetry, memory = make_telemetry("ecommerce", app=app, **overrides)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
            assert (await client.get("/v1/items/abc")).json() == {"length": 3}
    except OSError:
        if os.environ.get("CI"):
            raise
        pytest.skip("PostgreSQL or Redis not running")
    telemetry.force_flush()
    spans = memory.get_finished_spans()
    server = next(s for s in spans if s.name == "GET /v1/items/{item_id}")
    return {
        "server": dict(server.attributes or {}),
        "client": dict(next(s for s in spans if s.name == "GET" and s.kind.name == "CLIENT").attributes or {}),
        "sql": dict(next(s for s in spans if "length" in str(dict(s.attributes or {}))).attributes or {}),
        "redis": dict(next(s for s in spans if s.name == "SET").attributes or {}),
    }


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
async def test_spans_carry_the_stable_http_and_database_names_by_default(make_telemetry, tmp_path, db) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/semconv.db" if db == "sqlite" else PG
    spans = await _spans(make_telemetry, url)
    server, client, sql, redis = spans["server"], spans["client"], spans["sql"], spans["redis"]
    assert server[Attr.HTTP_REQUEST_METHOD] == "GET" and server[Attr.HTTP_RESPONSE_STATUS_CODE] == 200
    assert server[Attr.HTTP_ROUTE] == "/v1/items/{item_id}" and server[Attr.URL_PATH] == "/v1/items/abc"
    assert client[Attr.HTTP_REQUEST_METHOD] == "GET" and client[Attr.HTTP_RESPONSE_STATUS_CODE] == 200
    assert client[Attr.URL_FULL] == "http://upstream/v1/ping" and client[Attr.SERVER_ADDRESS] == "upstream"
    assert "length" in sql[Attr.DB_QUERY_TEXT] and sql[Attr.DB_SYSTEM_NAME] == db
    assert redis[Attr.DB_SYSTEM_NAME] == "redis" and redis[Attr.DB_QUERY_TEXT] == "SET ? ? ? ?"
    assert redis[Attr.SERVER_ADDRESS] == "127.0.0.1"
    for kind, attributes in spans.items():
        assert not OLD & set(attributes), (kind, sorted(OLD & set(attributes)))


async def test_the_deployments_own_opt_in_is_respected(make_telemetry, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http/dup")  # old and new HTTP names, old DB names
    from otel_setup.settings import load_settings

    assert load_settings().semconv_stability_opt_in == "http/dup"
    spans = await _spans(make_telemetry, f"sqlite+aiosqlite:///{tmp_path}/semconv.db",
                         semconv_stability_opt_in=load_settings().semconv_stability_opt_in)
    # The contrib instrumentations follow it; the server span is otel_setup's own, stable names only.
    assert spans["client"]["http.status_code"] == spans["client"][Attr.HTTP_RESPONSE_STATUS_CODE] == 200
    assert "http.status_code" not in spans["server"] and spans["server"][Attr.HTTP_RESPONSE_STATUS_CODE] == 200
    assert "db.statement" in spans["sql"] and Attr.DB_QUERY_TEXT not in spans["sql"]
