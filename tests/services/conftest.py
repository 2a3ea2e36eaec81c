"""Service tests run twice: on the embedded default (SQLite + in-process cache) and on the real
PostgreSQL and Redis of this machine (127.0.0.1:5432 and :6379; each test gets its own database
and Redis key prefix, removed afterwards).

``serve(app)`` runs an app's lifespan and gives an ``httpx.AsyncClient`` talking to it in-process;
a service that calls another gets that other app's real ASGI transport (see ``transports``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from services.common.inprocess import serve

__all__ = ["Backend", "serve"]

PG_DSN = os.environ.get("SHOPFDS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SHOPFDS_TEST_REDIS", "redis://127.0.0.1:6379/0")


@dataclass
class Backend:
    name: str
    overrides: dict[str, Any]


async def _pg_available() -> bool:
    import asyncpg

    try:
        conn = await asyncpg.connect(PG_DSN, timeout=2)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@pytest.fixture(params=["embedded", "postgres+redis"])
async def backend(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Backend]:
    if request.param == "embedded":
        yield Backend("embedded", {"data_dir": str(tmp_path / "data"), "redis_url": None, "database_url": None})
        return
    if not await _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL not reachable at {PG_DSN}")
        pytest.skip("PostgreSQL not running")
    import asyncpg
    import redis.asyncio as redis

    db = f"shopfds_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_DSN)
    await admin.execute(f'CREATE DATABASE "{db}"')
    prefix = f"shopfds-test:{uuid.uuid4().hex[:8]}:"
    url = PG_DSN.rsplit("/", 1)[0] + f"/{db}"
    try:
        yield Backend("postgres+redis", {"data_dir": str(tmp_path / "data"), "database_url": url,
                                         "redis_url": REDIS_URL, "cache_prefix": prefix})
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()
        client = redis.Redis.from_url(REDIS_URL)
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


