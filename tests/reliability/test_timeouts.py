"""A database or Redis that accepts connections and never answers: every wait is bounded.

The services reach the real PostgreSQL and Redis through a TCP proxy that the test turns into a
black hole (it accepts, keeps connections open and forwards nothing), from the start or at a
chosen SQL statement. Without statement and connect timeouts such a request waits for the
network to give up (minutes); with them it is a 503 within the settings' bound and the
checkout it cut has written nothing half, which the same Idempotency-Key completes after.
The deadline of each wait is a few times the bound: reaching it is the failure.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from services.common.cache import FallbackCache, RedisCache
from services.ecommerce.models import CartItem, Order, Payment, Product
from tests.faults_net import TcpProxy
from tests.reliability.test_dependencies import POSTGRES_ONLY, postgres_proxy
from tests.services.conftest import REDIS_URL, Backend, serve
from tests.services.conftest import backend as backend  # the fixture: embedded, and PostgreSQL + Redis
from tests.services.ecommerce.conftest import checkout_body, fill_cart, make_app, shopper

BOUND = 0.5  # each of connect and statement timeout, seconds
# A hang guard, not a latency check: a ping, a reconnect and a statement take at most 3 * BOUND;
# without the timeouts the wait is the network's (minutes). Room for a loaded 2-core machine.
DEADLINE = 20 * BOUND
TIMEOUTS = {"database_connect_timeout_seconds": BOUND, "database_statement_timeout_seconds": BOUND}
UNAVAILABLE = {"detail": "database unavailable, retry later"}


async def _bounded(call: Any) -> Any:
    try:
        return await asyncio.wait_for(call, DEADLINE)
    except TimeoutError:
        pytest.fail(f"no answer within {DEADLINE}s from a database that never answers")


@POSTGRES_ONLY
@pytest.mark.parametrize("when", ["pooled connection", "new connection"])
async def test_a_silent_database_is_a_503_within_the_bound(backend: Backend, tmp_path: Path, when: str) -> None:
    async with postgres_proxy(backend) as (pg, through):
        app = make_app(through, tmp_path, **TIMEOUTS)
        async with serve(app) as client:
            await shopper(client)  # the pool holds a live connection now
            if when == "new connection":
                await app.state.db.engine.dispose()
            await pg.black_hole()
            register = await _bounded(client.post("/v1/auth/register", json={
                "email": f"{uuid.uuid4().hex[:8]}@example.com", "password": "s3cret-pass", "name": "Kim"}))
            health = await _bounded(client.get("/health"))
            await pg.restore()
            after = await _bounded(shopper(client))
    for response in (register, health):
        assert response.status_code == 503, response.text
        assert response.json() == UNAVAILABLE
    assert after["Authorization"].startswith("Bearer ")


# Statements of the checkout at which the database goes silent; the retry finds what it expects.
SILENT_AT = {
    "order insert": (b"INSERT INTO ecommerce_orders", 201),
    "payment row": (b"INSERT INTO ecommerce_payments", 200),
}


@POSTGRES_ONLY
@pytest.mark.parametrize("point", list(SILENT_AT))
async def test_a_checkout_the_database_stops_answering_writes_nothing_half(backend: Backend, tmp_path: Path,
                                                                          point: str) -> None:
    pattern, retry_status = SILENT_AT[point]
    async with postgres_proxy(backend) as (pg, through):
        app = make_app(through, tmp_path, fds_fail_policy="approve", **TIMEOUTS)
        async with serve(app) as client:
            auth = await shopper(client)
            stock = (await client.get("/v1/products/3")).json()["stock"]
            await fill_cart(client, auth, (3, 2))
            headers = {**auth, "Idempotency-Key": f"hang-{uuid.uuid4().hex[:8]}"}
            pg.black_hole_on(pattern)
            hung = await _bounded(client.post("/v1/orders", json=checkout_body(), headers=headers))
            assert pg.tripped.is_set(), "the database did not go silent at the chosen statement"
            async with app.state.db.sessions() as session:  # through the black hole: bounded too
                during = await _bounded(_safe_count(session))
            await pg.restore()
            retry = await _bounded(client.post("/v1/orders", json=checkout_body(), headers=headers))
            async with app.state.db.sessions() as session:
                orders = (await session.execute(select(Order.id, Order.status))).all()
                payments = (await session.execute(select(Payment.status))).scalars().all()
                left = await session.scalar(select(Product.stock).where(Product.id == 3))
                cart = await session.scalar(select(func.count()).select_from(CartItem))
    assert hung.status_code == 503 and hung.json() == UNAVAILABLE
    assert during == "unavailable"
    assert retry.status_code == retry_status, retry.text
    order = retry.json()
    assert [tuple(r) for r in orders] == [(order["order_id"], "processing")]
    assert payments == ["succeeded"] and left == stock - 2 and cart == 0


async def _safe_count(session: Any) -> str:
    from sqlalchemy.exc import DBAPIError

    try:
        await session.scalar(select(func.count()).select_from(Order))
    except DBAPIError:
        return "unavailable"
    return "answered"


@POSTGRES_ONLY
async def test_a_silent_redis_falls_back_in_process_within_the_bound(backend: Backend) -> None:
    real = urlsplit(REDIS_URL)
    prefix = f"{backend.overrides['cache_prefix']}hang:"
    async with TcpProxy(real.hostname or "127.0.0.1", real.port or 6379) as proxy:
        url = real._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
        cache = FallbackCache(RedisCache(url, prefix, timeout=BOUND, connect_timeout=BOUND))
        await cache.set("k", "before", 60)
        assert cache.backend == "redis"
        await proxy.black_hole()
        hits = await _bounded(cache.hit_window("velocity", 60))
        got = await _bounded(cache.get("k"))
        backend_during = cache.backend
        await proxy.restore()
        await cache.close()
    assert hits == 1 and got is None  # answered by the in-process store, which starts empty
    assert backend_during == "memory-fallback"


@POSTGRES_ONLY
async def test_what_an_outage_wrote_in_process_is_dropped_when_redis_is_back(backend: Backend) -> None:
    """The in-process fallback holds only the outage's writes: once Redis answers again it is
    emptied, so it neither grows across outages nor answers a later outage with stale entries."""
    real = urlsplit(REDIS_URL)
    prefix = f"{backend.overrides['cache_prefix']}back:"
    async with TcpProxy(real.hostname or "127.0.0.1", real.port or 6379) as proxy:
        url = real._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
        cache = FallbackCache(RedisCache(url, prefix, timeout=BOUND, connect_timeout=BOUND), retry_after=0.2)
        await proxy.cut()
        await cache.set("during", "outage", 3600)
        assert cache.backend == "memory-fallback" and await cache.memory.get("during") == "outage"
        await proxy.restore()
        await asyncio.sleep(0.3)  # past retry_after: the next call tries Redis again
        assert await cache.get("during") is None  # Redis never saw it
        assert cache.backend == "redis" and await cache.memory.get("during") is None
        await cache.close()
