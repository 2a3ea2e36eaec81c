"""Database and cache calls are child spans of the request, without parameter values."""

from __future__ import annotations

import os
import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from services.common.cache import RedisCache
from services.common.db import Database

SECRET = "4111111111111111"
PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def _app(db_url: str) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/lookup")
    async def lookup() -> dict[str, int]:
        db = Database(db_url)
        cache = RedisCache("redis://127.0.0.1:6379/0", prefix=f"deptest:{uuid.uuid4().hex[:6]}:")
        try:
            async with db.sessions() as session:
                value = (await session.execute(text("SELECT length(:card)"), {"card": SECRET})).scalar_one()
            await cache.set("card", SECRET, 5)
            await cache.get("card")
            await cache.delete("card")
        finally:
            await cache.close()
            await db.dispose()
        return {"length": int(value)}

    return app


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
async def test_sql_and_redis_spans_are_children_of_the_request(make_telemetry, tmp_path, db) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/dep.db" if db == "sqlite" else PG
    app = _app(url)
    telemetry, memory = make_telemetry("ecommerce", app=app)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            response = await client.get("/v1/lookup")
    except OSError:
        if os.environ.get("CI"):
            raise
        pytest.skip("PostgreSQL or Redis not running")
    assert response.json() == {"length": 16}
    telemetry.force_flush()
    spans = memory.get_finished_spans()
    server = next(s for s in spans if s.name == "GET /v1/lookup")
    trace = [s for s in spans if s.context.trace_id == server.context.trace_id]
    sql = [s for s in trace if "db.query.text" in (s.attributes or {}) and "length" in s.attributes["db.query.text"]]
    redis = [s for s in trace if s.name in ("SET", "GET", "DEL")]
    assert sql, [s.name for s in trace]
    assert not [s for s in trace if s.name == "connect"]  # pool checkouts are not database calls
    assert {s.name for s in redis} == {"SET", "GET", "DEL"}
    for span in sql + redis:
        assert span.parent is not None and span.context.trace_id == server.context.trace_id
    assert all(SECRET not in str(dict(s.attributes or {})) for s in trace)
    assert all("?" in s.attributes["db.query.text"] for s in redis if "db.query.text" in s.attributes)
