"""Register, log in, the login/registration counters and the active-users gauge."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import samples

from ..conftest import Backend, serve
from .conftest import counter, make_app, shopper


async def test_register_login_and_counters(backend: Backend, tmp_path: Path) -> None:
    app = make_app(backend, tmp_path)
    async with serve(app) as client:
        created = await client.post("/v1/auth/register",
                                    json={"email": "Lee@Example.com", "password": "password1", "name": "Lee"})
        again = await client.post("/v1/auth/register",
                                  json={"email": "lee@example.com", "password": "password2", "name": "Lee"})
        ok = await client.post("/v1/auth/login", json={"email": "lee@example.com", "password": "password1"})
        wrong = await client.post("/v1/auth/login", json={"email": "lee@example.com", "password": "nope-nope"})
        unknown = await client.post("/v1/auth/login", json={"email": "who@example.com", "password": "password1"})
        cart = await client.get("/v1/cart", headers={"Authorization": f"Bearer {ok.json()['access_token']}"})
    assert created.status_code == 201
    assert created.json()["email"] == "lee@example.com"
    assert again.status_code == 409
    assert ok.status_code == 200
    assert ok.json()["token_type"] == "bearer" and ok.json()["user_id"] == created.json()["user_id"]
    assert (wrong.status_code, unknown.status_code) == (401, 401)
    assert cart.status_code == 200
    telemetry = app.state.telemetry
    logins = samples(telemetry, "ecommerce_user_logins")
    assert counter(logins, result="success") == 1
    assert counter(logins, result="failed") == 2
    assert counter(samples(telemetry, "ecommerce_user_registrations")) == 1


async def test_register_rejects_bad_input(backend: Backend, tmp_path: Path) -> None:
    async with serve(make_app(backend, tmp_path)) as client:
        short = await client.post("/v1/auth/register", json={"email": "a@b.co", "password": "short", "name": "A"})
        email = await client.post("/v1/auth/register", json={"email": "not-mail", "password": "long-enough",
                                                            "name": "A"})
        missing = await client.post("/v1/auth/register", json={"email": "a@b.co"})
    assert [r.status_code for r in (short, email, missing)] == [422, 422, 422]
    assert short.json()["detail"][0]["loc"] == ["body", "password"]


async def test_tokens_are_required_and_checked(backend: Backend, tmp_path: Path) -> None:
    app = make_app(backend, tmp_path)
    async with serve(app) as client:
        missing = await client.get("/v1/cart")
        garbage = await client.get("/v1/cart", headers={"Authorization": "Bearer not-a-jwt"})
    assert (missing.status_code, garbage.status_code) == (401, 401)


async def test_active_users_counts_distinct_shoppers_in_window(backend: Backend, tmp_path: Path) -> None:
    app = make_app(backend, tmp_path)
    async with serve(app) as client:
        first = await shopper(client)
        await shopper(client)
        await client.get("/v1/cart", headers=first)
        assert await app.state.active_users.refresh() == 2  # what the background refresh does
        gauge = samples(app.state.telemetry, "ecommerce_active_users")
        assert [s.value for s in gauge] == [2]
        # Everyone has left the window: the background refresh drops them.
        app.state.active_users.window_s = 0.0
        assert await app.state.active_users.refresh() == 0
        assert [s.value for s in samples(app.state.telemetry, "ecommerce_active_users")] == [0]


async def test_failed_logins_are_limited_per_account(backend: Backend, tmp_path: Path) -> None:
    app = make_app(backend, tmp_path, login_attempts_per_minute=3)
    async with serve(app) as client:
        await shopper(client, "limited@example.com")
        wrong = [await client.post("/v1/auth/login", json={"email": "limited@example.com", "password": "wrong-pass"})
                 for _ in range(4)]
        right_but_locked = await client.post("/v1/auth/login",
                                             json={"email": "limited@example.com", "password": "s3cret-pass"})
        other_account = await client.post("/v1/auth/login", json={"email": "other@example.com", "password": "x" * 8})
    assert [r.status_code for r in wrong] == [401, 401, 401, 429]
    assert right_but_locked.status_code == 429 and int(right_but_locked.headers["Retry-After"]) > 0
    assert other_account.status_code == 429  # the same client address is locked too
    failed = counter(samples(app.state.telemetry, "ecommerce_user_logins"), result="failed")
    assert failed == 6
