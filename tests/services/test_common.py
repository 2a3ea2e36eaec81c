"""The shared service layer on both back ends: health, cache semantics, errors, tokens."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.app import CacheDep, SessionDep, create_service_app
from services.common.security import AdminDep, issue_token
from services.common.settings import ServiceSettings

from ..readme import environment_names, variable_rows
from .conftest import Backend, serve


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "common_test_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(100))


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=100)
    amount: float = Field(gt=0)


def make_app(backend: Backend, **extra: object):
    settings = ServiceSettings(**backend.overrides, **extra)
    app = create_service_app("commontest", settings, title="t", tables=Base)
    router = APIRouter()

    @router.post("/notes")
    async def add(note: NoteIn, session: SessionDep) -> dict[str, int]:
        row = Note(text=note.text)
        session.add(row)
        await session.commit()
        return {"id": row.id}

    @router.get("/velocity/{key}")
    async def velocity(key: str, cache: CacheDep) -> dict[str, int]:
        return {"count": await cache.hit_window(key, 60)}

    @router.get("/admin-only")
    async def admin_only(who: AdminDep) -> dict[str, str]:
        return {"who": who.subject}

    app.include_router(router)
    return app


async def test_health_reports_database_and_cache(backend: Backend) -> None:
    async with serve(make_app(backend)) as client:
        body = (await client.get("/health")).json()
    assert body["database"] == "ok"
    assert body["cache"] == ("redis" if backend.overrides.get("redis_url") else "memory")


async def test_validation_error_does_not_echo_input(backend: Backend) -> None:
    card = "4111111111111111"
    async with serve(make_app(backend)) as client:
        response = await client.post("/notes", json={"text": card, "amount": -5})
        ok = await client.post("/notes", json={"text": "fine", "amount": 5})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "amount"]
    assert card not in response.text
    assert ok.status_code == 200 and ok.json()["id"] >= 1


async def test_body_over_limit_is_413(backend: Backend) -> None:
    async with serve(make_app(backend, max_body_bytes=100)) as client:
        response = await client.post("/notes", content=b'{"text": "' + b"x" * 500 + b'"}',
                                     headers={"content-type": "application/json"})
    assert response.status_code == 413


async def test_velocity_counts_in_window_on_both_backends(backend: Backend) -> None:
    async with serve(make_app(backend)) as client:
        counts = [(await client.get("/velocity/card-1")).json()["count"] for _ in range(3)]
        other = (await client.get("/velocity/card-2")).json()["count"]
    assert counts == [1, 2, 3]
    assert other == 1


async def test_cache_observe_and_remember(backend: Backend) -> None:
    app = make_app(backend)
    async with serve(app):
        cache = app.state.cache
        assert await cache.observe("u1", 100.0, 60) == (0, 0.0)
        assert await cache.observe("u1", 50.0, 60) == (1, 100.0)
        assert await cache.remember("dev:u1", "d1", 60) is True
        assert await cache.remember("dev:u1", "d1", 60) is False
        await cache.set("k", "v", 0.05)
        assert await cache.get("k") == "v"
        await asyncio.sleep(0.1)
        assert await cache.get("k") is None


async def test_claim_peek_and_set_many_on_both_backends(backend: Backend) -> None:
    app = make_app(backend)
    async with serve(app):
        cache = app.state.cache
        assert await cache.claim_peek("claim:t1", "running", 60, "seen:t1") == (None, None)
        assert await cache.claim_peek("claim:t1", "other", 60, "seen:t1") == ("running", None)
        await cache.set_many([("claim:t1", "answer", 60), ("seen:t1", "1", 60)])
        assert await cache.claim_peek("claim:t1", "running", 60, "seen:t1") == ("answer", "1")
        assert await cache.get("claim:t1") == "answer"
        await cache.set_many([("short", "v", 0.05)])
        await asyncio.sleep(0.1)
        assert await cache.claim_peek("short", "mine", 60, "missing") == (None, None)


async def test_roles_are_enforced(backend: Backend) -> None:
    app = make_app(backend)
    secret = app.state.settings.jwt_secret

    def bearer(key: str, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(key, role[0], role, 60)}"}

    async with serve(app) as client:
        missing = await client.get("/admin-only")
        user = await client.get("/admin-only", headers=bearer(secret, "user"))
        forged = await client.get("/admin-only", headers=bearer("another-secret-of-32-bytes-or-more!", "admin"))
        admin = await client.get("/admin-only", headers=bearer(secret, "admin"))
    assert (missing.status_code, user.status_code, forged.status_code) == (401, 403, 401)
    assert admin.json() == {"who": "a"}


def test_default_secret_refuses_production() -> None:
    with pytest.raises(RuntimeError, match="SHOPFDS_JWT_SECRET"):
        create_service_app("commontest", ServiceSettings(environment="production"), title="t")


async def test_redis_down_falls_back_to_memory(tmp_path) -> None:
    settings = {"data_dir": str(tmp_path), "redis_url": "redis://127.0.0.1:1/0"}
    app = make_app(Backend("dead-redis", settings))
    async with serve(app) as client:
        counts = [(await client.get("/velocity/x")).json()["count"] for _ in range(2)]
        health = (await client.get("/health")).json()
    assert counts == [1, 2]
    assert health["cache"] == "memory-fallback"


async def test_faults_switch_on_and_off_at_run_time(backend: Backend) -> None:
    from services.common.faults import parse_spec

    app = make_app(backend)
    staff = {"Authorization": f"Bearer {issue_token(app.state.settings.jwt_secret, 's', 'service', 60)}"}
    async with serve(app) as client:
        assert (await client.put("/internal/faults/db-slow", json={"value": "20ms"})).status_code == 401
        on = await client.put("/internal/faults/db-slow", json={"value": "20ms"}, headers=staff)
        assert on.json()["active"] == {"db-slow": 0.02}
        assert app.state.faults.get("db-slow") == 0.02
        assert (await client.put("/internal/faults/nope", json={}, headers=staff)).status_code == 404
        assert (await client.put("/internal/faults/db-slow", json={"value": "fast"}, headers=staff)).status_code == 422
        off = await client.delete("/internal/faults/db-slow", headers=staff)
        assert off.json()["active"] == {} and app.state.faults.get("db-slow") is None
    assert parse_spec("payment-errors=5%") == ("payment-errors", 0.05)
    assert parse_spec("cti-slow") == ("cti-slow", 0.15)
    with pytest.raises(ValueError, match="unknown fault"):
        parse_spec("disk-full")


async def test_a_stale_fault_read_does_not_undo_a_newer_change() -> None:
    """The follower's read in flight while this process switches a fault returns the old state;
    taking it must not switch the fault back (the race CI once hit on PostgreSQL + Redis)."""
    from services.common.cache import MemoryCache
    from services.common.faults import KEY, Faults

    cache, here, sibling = MemoryCache(), Faults(), Faults()
    await here.change(cache, {"db-slow": 0.02})
    stale = await cache.get(KEY)
    assert stale is not None
    await here.change(cache, {})
    here.take(stale)
    assert here.get("db-slow") is None
    sibling.take(stale)
    assert sibling.get("db-slow") == 0.02
    await sibling.change(cache, {"ml-down": 1.0})
    latest = await cache.get(KEY)
    assert latest is not None
    here.take(latest)
    assert here.active == {"ml-down": 1.0}


def test_fault_routes_are_absent_in_production(tmp_path) -> None:
    settings = ServiceSettings(environment="production", jwt_secret="x" * 40, data_dir=str(tmp_path))
    app = create_service_app("commontest", settings, title="t")
    assert not any(getattr(r, "path", "").startswith("/internal/faults") for r in app.routes)


async def test_forwarded_for_is_believed_only_from_trusted_proxies(backend: Backend) -> None:
    from services.common.client_ip import client_ip

    async def seen(app, headers: dict[str, str]) -> str:
        @app.get("/ip")
        async def ip(request: Request) -> dict[str, str]:
            return {"ip": client_ip(request)}

        async with serve(app) as client:  # httpx's ASGI transport connects from 127.0.0.1
            return str((await client.get("/ip", headers=headers)).json()["ip"])

    chain = {"X-Forwarded-For": "203.0.113.9, 10.0.0.7"}
    assert await seen(make_app(backend), chain) == "127.0.0.1"
    assert await seen(make_app(backend, trusted_proxies="127.0.0.1, 10.0.0.0/8"), chain) == "203.0.113.9"
    assert await seen(make_app(backend, trusted_proxies="127.0.0.1"), {"X-Forwarded-For": "junk"}) == "127.0.0.1"
    with pytest.raises(ValueError):
        ServiceSettings(trusted_proxies="not-a-network")


@pytest.mark.parametrize("service", ["all", "ecommerce", "fds", "ml", "admin"])
def test_the_readme_documents_exactly_each_services_variables(service: str) -> None:
    """The README's services table, rows for ``all`` and for the service, names exactly the
    variables the service's settings declare: none missing, none left over."""
    import importlib
    from pathlib import Path

    module = importlib.import_module(f"services.{'common' if service == 'all' else service}.settings")
    settings_class = getattr(module, "Settings", ServiceSettings)
    section = (Path(__file__).resolve().parents[2] / "README.md").read_text().split("### Services", 1)[1]
    rows = variable_rows(section.split("\n## ", 1)[0])
    assert {row["service"] for _, row in rows} == {"all", "ecommerce", "fds", "ml", "admin"}
    documented = {name for names, row in rows if row["service"] in ("all", service) for name in names}
    declared = {name for names in environment_names(settings_class).values() for name in names}
    assert (sorted(declared - documented), sorted(documented - declared)) == ([], [])


async def test_batch_answers_like_the_single_operations(backend: Backend) -> None:
    from services.common.cache import HitWindow, Observe, Remember

    app = make_app(backend)
    async with serve(app):
        cache = app.state.cache
        await cache.hit_window("b:card", 60)
        await cache.observe("b:hist", 10.0, 60)
        first = await cache.batch([HitWindow("b:card", 60), Observe("b:hist", 5.0, 60), Remember("b:dev", "d1", 60),
                                   HitWindow("b:other", 60)])
        second = await cache.batch([Remember("b:dev", "d1", 60), HitWindow("b:card", 60)])
    assert first == [2, (1, 10.0), True, 1]
    assert second == [False, 3]
