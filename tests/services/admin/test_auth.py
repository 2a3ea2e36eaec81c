"""Admin login, its rate limit, role checks on every route, and the production guard."""

from __future__ import annotations

import pytest

from otel_setup.settings import TelemetrySettings
from services.admin.app import create_app
from services.admin.settings import Settings
from services.common.security import decode_token

from ..conftest import Backend, serve
from .helpers import PASSWORD, bearer, client_from, counter, make_admin

PROTECTED = [("GET", "/v1/admin/reviews", None), ("GET", "/v1/admin/stats", None),
             ("POST", "/v1/admin/reviews/txn-1/resolve", {"decision": "approve", "is_fraud": False})]


async def test_login_issues_an_admin_token(backend: Backend, tmp_path) -> None:
    app = make_admin(backend, tmp_path)
    async with serve(app) as client:
        response = await client.post("/v1/admin/auth/login", json={"username": "admin", "password": PASSWORD})
        token = response.json()["access_token"]
        # The token opens admin routes: the FDS behind them is down here, so 502 (not 401/403).
        reviews = await client.get("/v1/admin/reviews", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.json()["token_type"] == "bearer"
    principal = decode_token(app.state.settings.jwt_secret, token)
    assert (principal.subject, principal.role) == ("admin", "admin")
    assert reviews.status_code == 502
    assert counter(app, "admin_logins", result="success") == 1


async def test_wrong_password_and_wrong_user_are_401(backend: Backend, tmp_path) -> None:
    app = make_admin(backend, tmp_path)
    async with serve(app) as client:
        wrong_password = await client.post("/v1/admin/auth/login", json={"username": "admin", "password": "nope"})
        wrong_user = await client.post("/v1/admin/auth/login", json={"username": "root", "password": PASSWORD})
        malformed = await client.post("/v1/admin/auth/login", json={"username": "admin"})
    assert (wrong_password.status_code, wrong_user.status_code, malformed.status_code) == (401, 401, 422)
    assert "access_token" not in wrong_password.json()
    assert counter(app, "admin_logins", result="failed") == 2


async def test_failed_logins_are_limited_per_account(backend: Backend, tmp_path) -> None:
    app = make_admin(backend, tmp_path, login_attempts_per_minute=3)
    async with serve(app), client_from(app, "10.0.0.1") as first, client_from(app, "10.0.0.2") as second:
        failed = [await first.post("/v1/admin/auth/login", json={"username": "admin", "password": f"guess{i}"})
                  for i in range(3)]
        # Past the limit even the right password is refused, from this IP and from another one.
        right = await first.post("/v1/admin/auth/login", json={"username": "admin", "password": PASSWORD})
        elsewhere = await second.post("/v1/admin/auth/login", json={"username": "ADMIN", "password": PASSWORD})
    assert [r.status_code for r in failed] == [401, 401, 401]
    assert (right.status_code, elsewhere.status_code) == (429, 429)
    assert 1 <= int(right.headers["Retry-After"]) <= 60
    assert counter(app, "admin_logins", result="failed") == 3
    assert counter(app, "admin_logins", result="rate_limited") == 2
    assert counter(app, "admin_logins", result="success") == 0


async def test_failed_logins_are_limited_per_ip(backend: Backend, tmp_path) -> None:
    app = make_admin(backend, tmp_path, login_attempts_per_minute=3)
    async with serve(app), client_from(app, "10.0.0.9") as attacker, client_from(app, "10.0.0.10") as admin:
        failed = [await attacker.post("/v1/admin/auth/login", json={"username": f"user{i}", "password": "x"})
                  for i in range(3)]
        limited = await attacker.post("/v1/admin/auth/login", json={"username": "someone-new", "password": "x"})
        # The attacker's IP is locked, not the admin account they never tried.
        ok = await admin.post("/v1/admin/auth/login", json={"username": "admin", "password": PASSWORD})
    assert [r.status_code for r in failed] == [401, 401, 401]
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    assert ok.status_code == 200


async def test_a_success_clears_the_failure_count(backend: Backend, tmp_path) -> None:
    app = make_admin(backend, tmp_path, login_attempts_per_minute=3)
    async with serve(app) as client:
        before = [await client.post("/v1/admin/auth/login", json={"username": "admin", "password": "typo"})
                  for _ in range(2)]
        ok = await client.post("/v1/admin/auth/login", json={"username": "admin", "password": PASSWORD})
        after = [await client.post("/v1/admin/auth/login", json={"username": "admin", "password": "typo"})
                 for _ in range(3)]
        fourth = await client.post("/v1/admin/auth/login", json={"username": "admin", "password": "typo"})
    assert [r.status_code for r in before + [ok] + after + [fourth]] == [401, 401, 200, 401, 401, 401, 429]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
async def test_every_admin_route_needs_the_admin_role(backend: Backend, tmp_path, method, path, body) -> None:
    app = make_admin(backend, tmp_path)
    async with serve(app) as client:
        def call(headers: dict[str, str] | None):
            return client.request(method, path, json=body, headers=headers or {})

        missing = await call(None)
        garbage = await call({"Authorization": "Bearer not-a-jwt"})
        forged = await call(bearer(app, "admin", secret="another-secret-that-is-long-enough!"))
        user = await call(bearer(app, "user"))
        service = await call(bearer(app, "service"))
        admin = await call(bearer(app, "admin"))
    assert [r.status_code for r in (missing, garbage, forged)] == [401, 401, 401]
    assert [r.status_code for r in (user, service)] == [403, 403]
    assert admin.status_code == 502  # authorised; the FDS is down in this test


def test_default_admin_password_refuses_production() -> None:
    strong_jwt = "a-production-jwt-secret-of-at-least-32-bytes"
    with pytest.raises(RuntimeError, match="SHOPFDS_ADMIN_PASSWORD"):
        create_app(Settings(environment="production", jwt_secret=strong_jwt))
    with pytest.raises(RuntimeError, match="SHOPFDS_JWT_SECRET"):
        create_app(Settings(environment="production", admin_password="a-real-password"))
    assert "SHOPFDS_ADMIN_PASSWORD" not in Settings(admin_password="a-real-password").default_secrets()


async def test_password_comes_from_the_environment(backend: Backend, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SHOPFDS_ADMIN_USERNAME", "ops")
    monkeypatch.setenv("SHOPFDS_ADMIN_PASSWORD", "from-the-env-1")
    telemetry = TelemetrySettings(trace_store_dir=str(tmp_path / "traces"))
    app = create_app(Settings(**backend.overrides), telemetry_settings=telemetry)
    async with serve(app) as client:
        ok = await client.post("/v1/admin/auth/login", json={"username": "ops", "password": "from-the-env-1"})
        default = await client.post("/v1/admin/auth/login", json={"username": "admin", "password": "admin"})
    assert (ok.status_code, default.status_code) == (200, 401)
    assert "from-the-env-1" not in repr(app.state.settings)
