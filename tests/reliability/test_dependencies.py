"""Dependencies that fail degrade the shop, they do not break it; each fault is real, on 127.0.0.1.

- CTI provider: a real HTTP server that is slow, refuses connections (port closed), answers 503,
  recovers: the FDS stays within its 100 ms SLA, the circuit breaker opens, probes half-open and
  closes again, and decisions say ``degraded`` with the reason.
- ML service: the real ML app on a real port, first absent, then up without a model, then with
  one, then stopped: rules-only decisions flagged ``ml_unavailable`` while there is no model,
  counted by the metric the *FDS Degraded Decisions* alert reads; a model once loaded is kept.
- Redis: the services reach the real Redis through a TCP proxy that the test cuts: they fall back
  to the in-process store (the FDS says ``aggregates_fallback``) and return to Redis after it.
- PostgreSQL: through a proxy cut before, or at a chosen statement of, a checkout: a 503 with a
  clear message, never a 500, and after recovery order, payment and stock rows agree.
- Payment gateway errors; concurrent Idempotency-Key retries over HTTP and across two processes.

docs/reliability.md states the policy these tests prove, dependency by dependency.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis.asyncio as redis
import yaml
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from otel_setup.settings import TelemetrySettings
from services.common.security import issue_token
from services.ecommerce.models import CartItem, Order, Payment, Product
from services.fds.app import create_app as create_fds_app
from services.fds.settings import Settings as FdsSettings
from services.ml.app import create_app as create_ml_app
from services.ml.settings import Settings as MlSettings
from shopfds.procs import free_port, uvicorn_app
from tests.faults_net import Switchable, TcpProxy, served
from tests.services.conftest import REDIS_URL, Backend, serve
from tests.services.conftest import backend as backend  # the fixture: embedded, and PostgreSQL + Redis
from tests.services.ecommerce.conftest import checkout_body, fill_cart, make_app, shopper
from tests.services.fds.conftest import Provider, make_fds, staff, txn

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_ONLY = pytest.mark.parametrize("backend", ["postgres+redis"], indirect=True)


async def _evaluate(client: httpx.AsyncClient, **changes: Any) -> dict[str, Any]:
    response = await client.post("/v1/fds/evaluate", json=txn(**changes))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _reasons(ev: dict[str, Any]) -> list[str]:
    return (ev["degraded_reason"] or "").split(", ") if ev["degraded_reason"] else []


async def _scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``/metrics`` as {(sample name, labels): value}."""
    body = (await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def _sum(scrape: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in scrape.items() if n == name and set(labels.items()) <= ls)


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def _someone(net: str, i: int) -> dict[str, str]:
    """A payer of their own (IP, user, device): no velocity rule links the evaluations of a test."""
    return {"ip_address": f"{net}.{i}", "user_id": f"u-{net}-{i}", "device_id": f"d-{net}-{i}"}


# -- CTI provider --------------------------------------------------------------------------------

@asynccontextmanager
async def cti_server(**kwargs: Any) -> AsyncIterator[tuple[Provider, Switchable]]:
    """The FDS tests' CTI provider (``GET /ip/{ip}``) on a port the test closes and reopens."""
    provider = Provider(**kwargs)
    server = Switchable(provider.handle)
    await server.up()
    try:
        yield provider, server
    finally:
        await server.down()


async def test_cti_provider_down_opens_the_breaker_and_a_half_open_probe_closes_it(
        backend: Backend, tmp_path: Path, record_property: Any) -> None:
    reset = 0.5  # short so that the test waits for it twice; the production default is 30 s
    async with cti_server(scores={"10.9.0.1": 80.0}) as (provider, cti):
        hits = provider.hits
        app = make_fds(backend, tmp_path, cti_provider_url=cti.url, cti_breaker_failures=3,
                       cti_breaker_reset_seconds=reset)
        async with serve(app) as client:
            known = await _evaluate(client, ip_address="10.9.0.1")  # provider up: answered and cached

            await cti.down()  # connection refused from now on
            down = [await _evaluate(client, **_someone("10.9.1", i)) for i in range(6)]
            opened_at = time.monotonic()
            cached = await _evaluate(client, ip_address="10.9.0.1", user_id="cached", device_id="cached")
            assert len(hits) == 1  # refused connections never reach the server

            # Back, but unhealthy: after the reset period exactly one probe goes through, fails,
            # and the circuit opens again for a full period.
            provider.status = 503
            await cti.up()
            await asyncio.sleep(reset)
            failed_probe = [await _evaluate(client, **_someone("10.9.2", i)) for i in range(3)]
            probes_while_unhealthy = len(hits) - 1

            provider.status = 200  # recovered
            recovered_at = time.monotonic()
            await asyncio.sleep(reset)
            closing = await _evaluate(client, **_someone("10.9.3", 1))
            closed_at = time.monotonic()
            after = [await _evaluate(client, **_someone("10.9.3", i)) for i in range(2, 5)]

    assert "cti_ip_reputation" in known["risk_factors"] and _reasons(known) == ["ml_unavailable"]
    # Three refused connections open the circuit; then the provider is not called at all.
    assert [_reasons(ev)[-1] for ev in down] == ["cti_provider_error"] * 3 + ["cti_provider_open"] * 3
    for ev in down:
        assert ev["degraded"] is True and ev["engines"]["cti"]["status"] == "ok"  # the feeds still answered
        assert ev["decision"] == "approve"  # rules (+ feeds) decide: an ordinary payment goes through
    # The cache answers for an IP seen before, whatever the circuit: the reputation still counts.
    assert "cti_ip_reputation" in cached["risk_factors"] and _reasons(cached) == ["ml_unavailable"]
    # Half-open: one probe (a real request, answered 503), the circuit open again for the rest.
    assert probes_while_unhealthy == 1
    assert [_reasons(ev)[-1] for ev in failed_probe] == ["cti_provider_error"] + ["cti_provider_open"] * 2
    # Recovered: the next call after the period is the probe, it succeeds, the circuit is closed.
    assert _reasons(closing) == ["ml_unavailable"]
    assert [_reasons(ev) for ev in after] == [["ml_unavailable"]] * 3
    assert hits[-4:] == ["10.9.3.1", "10.9.3.2", "10.9.3.3", "10.9.3.4"]
    record_property("cti_breaker_open_after_failures", 3)
    record_property("cti_breaker_closed_s_after_recovery", round(closed_at - recovered_at, 3))
    record_property("cti_breaker_open_s_total", round(closed_at - opened_at, 3))


@pytest.mark.parametrize("fault", ["slow", "down"])
async def test_cti_provider_slow_or_down_is_cut_and_never_waited_for(
        backend: Backend, tmp_path: Path, fault: str, record_property: Any) -> None:
    """Slow: the provider answers in 300 ms (10x its 30 ms timeout) and the breaker never opens,
    so every evaluation calls it and is cut: by the provider's own timeout, or, on a busy machine,
    by the engine's 50 ms budget. Down: the port refuses; the default breaker (5 failures) opens.
    Either way no evaluation waits for the provider's answer: an FDS that did would report the
    provider's score with no provider reason. The P95 of the FDS's own ``duration_ms`` is kept as
    a test property, not asserted: on a loaded machine it measures the machine, not the budgets."""
    async with cti_server(delay=0.3) as (_provider, cti):
        extra = {"cti_breaker_failures": 1000} if fault == "slow" else {}
        app = make_fds(backend, tmp_path, cti_provider_url=cti.url, **extra)
        provider_timeout_ms = app.state.settings.cti_provider_timeout_seconds * 1000
        if fault == "down":
            await cti.down()
        async with serve(app) as client:
            await _evaluate(client, **_someone("10.10.0", 0))  # first request: lazy set-up out of the figure
            evs = [await _evaluate(client, **_someone("10.10.1", i)) for i in range(1, 41)]
    record_property(f"fds_p95_ms_cti_{fault}", round(_p95([ev["duration_ms"] for ev in evs]), 2))
    # The provider's own timeout (30 ms) answers first, keeping the feed result; on a busy machine
    # the engine budget (50 ms) may cut the call first: degraded either way, never waiting longer.
    expected = {"slow": {"cti_provider_timeout"}, "down": {"cti_provider_error", "cti_provider_open"}}[fault]
    assert expected <= {_reasons(ev)[-1] for ev in evs} <= expected | {"cti_timeout"}
    assert all(ev["degraded"] and ev["decision"] == "approve" for ev in evs)
    # The engine itself timed out exactly where its budget cut the call; elsewhere the feeds answered.
    assert [ev["engines"]["cti"]["status"] for ev in evs] == [
        "timeout" if _reasons(ev)[-1] == "cti_timeout" else "ok" for ev in evs]
    # A provider timeout came no sooner than the provider timeout set (a lower bound: load only adds).
    cut = [ev["engines"]["cti"]["duration_ms"] for ev in evs if _reasons(ev)[-1] == "cti_provider_timeout"]
    assert all(ms >= provider_timeout_ms - 0.01 for ms in cut), (provider_timeout_ms, cut)


# -- ML service ----------------------------------------------------------------------------------

def _degraded_alert() -> dict[str, Any]:
    groups = yaml.safe_load((ROOT / "prometheus" / "rules" / "alerts.yml").read_text())["groups"]
    rule: dict[str, Any] = next(r for g in groups for r in g["rules"] if r.get("alert") == "FDS Degraded Decisions")
    return rule


def _counting(app: Any, paths: list[str]) -> Any:
    """The real ML app, noting each request path (the FDS's polls) on the way in."""
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            paths.append(scope["path"])
        await app(scope, receive, send)

    return wrapped


async def _until(check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_ml_service_down_or_without_a_model_gives_rules_only_decisions_the_alert_sees(
        backend: Backend, tmp_path: Path) -> None:
    refresh = 0.2  # the poll period (production: 30 s)
    port = free_port()  # nothing listens yet: the ML service is down when the FDS starts
    # The ML app is built first: the FDS, built last, owns the process's active telemetry.
    ml_app = create_ml_app(MlSettings(**backend.overrides, train_on_start=False),
                           telemetry_settings=TelemetrySettings(trace_store_dir=str(tmp_path / "ml-traces")))
    polls: list[str] = []
    app = make_fds(backend, tmp_path, ml_url=f"http://127.0.0.1:{port}", ml_refresh_seconds=refresh)
    rule = _degraded_alert()
    watched = set(re.findall(r"\b(fds_[a-z_]+_total)\b", rule["expr"]))
    threshold = float(rule["expr"].rsplit(">", 1)[1])
    async with serve(app) as client:
        before = await _scrape(client)
        down = await _evaluate(client, email="x@mailinator.com")
        async with served(_counting(ml_app, polls), port) as ml_url:
            await _until(lambda: _polled(polls))  # the FDS asked and was told: nothing deployed (404)
            no_model = await _evaluate(client, email="x@mailinator.com")
            during = await _scrape(client)
            trained = await _train(ml_url, ml_app)
            waiting: list[dict[str, Any]] = []

            async def scored() -> bool:
                waiting.append(await _evaluate(client))
                return bool(waiting[-1]["engines"]["ml"]["status"] == "ok")

            await _until(scored)
            healthy = waiting[-1]
        settled = len(polls)
        await asyncio.sleep(3 * refresh)  # polls now meet a closed port
        kept = await _evaluate(client)
        after = await _scrape(client)

    # Down, then up without a model: the ML engine is unavailable, rules (and CTI) decide.
    for ev in (down, no_model):
        assert ev["engines"]["ml"]["status"] == "unavailable" and ev["model_version"] is None
        assert ev["degraded"] is True and _reasons(ev) == ["ml_unavailable"]
        assert (ev["risk_factors"], ev["decision"]) == (["cti_disposable_email"], "additional_auth")
    # Deployed: picked up by the poll; nothing degraded. Stopped: the loaded model is kept.
    assert healthy["model_version"] == trained and not healthy["degraded"]
    assert (kept["engines"]["ml"]["status"], kept["model_version"], kept["degraded"]) == ("ok", trained, False)
    assert len(polls) == settled  # the ML service was really gone

    # The metrics the alert reads moved by exactly the degraded answers, and its expression
    # (degraded / all evaluations) is over its threshold for reason ml_unavailable while ML is out.
    assert watched == {"fds_degraded_evaluations_total", "fds_evaluations_total"}
    flagged = sum(_reasons(ev) == ["ml_unavailable"] for ev in [down, no_model, *waiting])
    degraded = _sum(after, "fds_degraded_evaluations_total", reason="ml_unavailable") \
        - _sum(before, "fds_degraded_evaluations_total", reason="ml_unavailable")
    assert degraded == flagged >= 2
    assert _sum(after, "fds_degraded_evaluations_total") - _sum(before, "fds_degraded_evaluations_total") == flagged
    ratio = (_sum(during, "fds_degraded_evaluations_total", reason="ml_unavailable")
             / _sum(during, "fds_evaluations_total"))
    assert ratio == 1.0 > threshold


async def _polled(polls: list[str]) -> bool:
    return "/v1/ml/models/deployed" in polls


async def _train(ml_url: str, ml_app: Any) -> int:
    token = issue_token(ml_app.state.settings.jwt_secret, "ops", "service", 60)
    async with httpx.AsyncClient(base_url=ml_url, timeout=60) as http:
        response = await http.post("/v1/ml/train", json={"samples": 1000, "deploy": True},
                                   headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.text
    version: int = response.json()["version"]
    return version


# -- Redis ---------------------------------------------------------------------------------------

@asynccontextmanager
async def shop_through(backend: Backend, tmp_path: Path, **overrides: Any) -> AsyncIterator[
        tuple[httpx.AsyncClient, httpx.AsyncClient, Any]]:
    """(shop client, FDS client, shop app): ecommerce calling the real FDS in-process, both on ``overrides``."""
    fds = create_fds_app(FdsSettings(**{**backend.overrides, **overrides}, ml_url="http://127.0.0.1:9"),
                         telemetry_settings=TelemetrySettings(trace_store_dir=str(tmp_path / "fds-traces")))
    async with serve(fds) as fds_client:
        shop = make_app(Backend(backend.name, {**backend.overrides, **overrides}), tmp_path,
                        fds_transport=httpx.ASGITransport(app=fds), fds_timeout=5.0)
        async with serve(shop) as client:
            yield client, fds_client, shop


async def _fds_reasons(fds_client: httpx.AsyncClient, shop: Any, order: dict[str, Any]) -> list[str]:
    stored = await fds_client.get(f"/v1/fds/transactions/{order['fds']['transaction_id']}",
                                  headers=staff(shop, "service"))
    assert stored.status_code == 200, stored.text
    return _reasons(stored.json())


@POSTGRES_ONLY
async def test_redis_cut_mid_run_falls_back_in_process_and_returns(backend: Backend, tmp_path: Path) -> None:
    prefix = backend.overrides["cache_prefix"]
    direct = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    real = urlsplit(REDIS_URL)
    async with TcpProxy(real.hostname or "127.0.0.1", real.port or 6379) as proxy:
        url = real._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
        async with shop_through(backend, tmp_path, redis_url=url) as (client, fds_client, shop):
            auth = await shopper(client)
            orders, health = [], []
            for phase in ("up", "cut", "restored"):
                if phase == "cut":
                    await proxy.cut()
                elif phase == "restored":
                    await proxy.restore()
                    await asyncio.sleep(shop.state.cache.retry_after)  # the fallback's own pause before Redis again
                    if written := [k async for k in direct.scan_iter(match=prefix + "*")]:
                        await direct.delete(*written)  # what is found at the end was written after
                await fill_cart(client, auth, (7, 1))
                response = await client.post("/v1/orders", json=checkout_body(), headers=auth)
                assert response.status_code == 201, (phase, response.text)
                orders.append(response.json())
                health.append((await client.get("/health")).json()["cache"])
            reasons = [await _fds_reasons(fds_client, shop, order) for order in orders]
            in_redis = [k async for k in direct.scan_iter(match=prefix + "*")]
    await direct.aclose()
    # Every checkout was decided by the FDS (not the fail policy) and paid.
    assert [o["fds"]["risk_factors"] for o in orders] == [[], [], []]
    assert [o["status"] for o in orders] == ["processing"] * 3
    assert health == ["redis", "memory-fallback", "redis"]
    assert [r for r in reasons[0] if r != "ml_unavailable"] == []
    assert "aggregates_fallback" in reasons[1]  # the velocity counters were this process's own
    assert "aggregates_fallback" not in reasons[2]
    assert any(k.startswith(f"{prefix}fds:v:") for k in in_redis), in_redis  # velocity in Redis again


# -- PostgreSQL ----------------------------------------------------------------------------------

@asynccontextmanager
async def postgres_proxy(backend: Backend) -> AsyncIterator[tuple[TcpProxy, Backend]]:
    """A proxy in front of the test's PostgreSQL, and the backend reaching its database through it."""
    url = make_url(backend.overrides["database_url"])
    async with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        yield proxy, Backend(backend.name, {**backend.overrides, "database_url": through})


@POSTGRES_ONLY
@pytest.mark.parametrize("outage", ["refused", "reset"])
async def test_postgres_down_is_a_clear_503_and_recovers(backend: Backend, tmp_path: Path, outage: str) -> None:
    """refused: the port is closed. reset: something still accepts (a pooler, a load balancer)
    but the server behind it is gone, so each connection is reset at once."""
    async with postgres_proxy(backend) as (pg, through):
        app = make_app(through, tmp_path)
        real = pg.target
        async with serve(app) as client:
            before = await _scrape(client)
            await pg.cut()
            if outage == "reset":
                pg.target = ("127.0.0.1", free_port())
                await pg.restore()
            register = await client.post("/v1/auth/register", json={
                "email": f"{uuid.uuid4().hex[:8]}@example.com", "password": "s3cret-pass", "name": "Kim"})
            health = await client.get("/health")
            during = await _scrape(client)
            await pg.cut()
            pg.target = real
            await pg.restore()
            auth = await shopper(client)  # after recovery: a new connection, everything works
    for response in (register, health):
        assert response.status_code == 503, response.text
        assert response.json() == {"detail": "database unavailable, retry later"}
        assert response.headers["retry-after"] == "5"
    assert auth["Authorization"].startswith("Bearer ")
    # What the availability and error-rate alerts read.
    assert _sum(during, "ecommerce_http_requests_total", status_code="503") \
        - _sum(before, "ecommerce_http_requests_total", status_code="503") == 1  # /health is not counted
    assert _sum(during, "ecommerce_errors_total", error_type="http_503") \
        - _sum(before, "ecommerce_errors_total", error_type="http_503") == 1


# Where an outage can hit a checkout, and what a retry with the same Idempotency-Key finds after it.
CUT_POINTS = {
    "order insert": (b"INSERT INTO ecommerce_orders", "created on retry"),
    "verdict write": (b"fds=$2", "pending without verdict"),
    "payment row": (b"INSERT INTO ecommerce_payments", "paid on retry"),
    "payment result": (b"UPDATE ecommerce_payments", "payment outcome unknown"),
}


@POSTGRES_ONLY
@pytest.mark.parametrize("point", list(CUT_POINTS))
async def test_postgres_cut_mid_checkout_leaves_no_half_written_order(backend: Backend, tmp_path: Path,
                                                                     point: str) -> None:
    pattern, expected = CUT_POINTS[point]
    async with postgres_proxy(backend) as (pg, through):
        app = make_app(through, tmp_path, fds_fail_policy="approve")
        async with serve(app) as client:
            auth = await shopper(client)
            stock = (await client.get("/v1/products/3")).json()["stock"]
            await fill_cart(client, auth, (3, 2))
            headers = {**auth, "Idempotency-Key": f"cut-{uuid.uuid4().hex[:8]}"}
            pg.cut_on(pattern)
            cut = await client.post("/v1/orders", json=checkout_body(), headers=headers)
            assert pg.tripped.is_set(), "the outage did not happen at the chosen statement"
            await pg.restore()
            retry = await client.post("/v1/orders", json=checkout_body(), headers=headers)
            again = await client.post("/v1/orders", json=checkout_body(), headers=headers)
            rows = await _rows(app)
            charged = _sum(await _scrape(client), "ecommerce_payments_total")
            order = retry.json()
            if expected == "pending without verdict":  # staff can still settle it: cancel returns the stock
                cancel = await client.post(f"/v1/orders/{order['order_id']}/status", json={"status": "cancelled"},
                                           headers=staff(app))
                assert cancel.status_code == 200, cancel.text
                settled = await _rows(app)

    assert cut.status_code == 503 and cut.json() == {"detail": "database unavailable, retry later"}
    assert retry.status_code == (201 if expected == "created on retry" else 200), retry.text
    assert again.status_code == 200 and again.json()["order_id"] == order["order_id"]
    # One order, at most one payment and one charge, the cart spent once, stock held by the live order.
    assert rows["orders"] == [(order["order_id"], order["status"])] and rows["cart"] == 0
    assert rows["stock"] == stock - 2
    state = (order["status"], order["next_action"], [p for _, p in rows["payments"]], charged)
    assert state == {"created on retry": ("processing", None, ["succeeded"], 1),
                     "pending without verdict": ("pending", None, [], 0),
                     "paid on retry": ("processing", None, ["succeeded"], 1),
                     # charged once, before the outage hid the result: a retry does not charge again
                     "payment outcome unknown": ("pending", None, ["pending"], 1)}[expected]
    if expected == "pending without verdict":
        assert order["fds"] is None
        assert settled["orders"] == [(order["order_id"], "cancelled")] and settled["stock"] == stock


async def _rows(app: Any) -> dict[str, Any]:
    async with app.state.db.sessions() as session:
        orders = (await session.execute(select(Order.id, Order.status))).all()
        payments = (await session.execute(select(Payment.order_id, Payment.status))).all()
        return {"orders": [tuple(r) for r in orders], "payments": [tuple(r) for r in payments],
                "stock": await session.scalar(select(Product.stock).where(Product.id == 3)),
                "cart": await session.scalar(select(func.count()).select_from(CartItem))}


@POSTGRES_ONLY
async def test_fds_keeps_deciding_while_postgres_is_down(backend: Backend, tmp_path: Path) -> None:
    async with postgres_proxy(backend) as (pg, through):
        app = make_fds(through, tmp_path)
        async with serve(app) as client:
            await pg.cut()
            during = [await _evaluate(client, user_id=f"u{i}") for i in range(3)]
            health = await client.get("/health")
            stored_during = await client.get(f"/v1/fds/transactions/{during[0]['transaction_id']}",
                                             headers=staff(app, "service"))
            await pg.restore()

            async def written() -> bool:
                found = [await client.get(f"/v1/fds/transactions/{ev['transaction_id']}",
                                          headers=staff(app, "service")) for ev in during]
                return all(r.status_code == 200 for r in found)

            await _until(written)
    assert all(ev["decision"] == "approve" for ev in during)  # decided without the database
    assert health.status_code == 503 and stored_during.status_code == 503
    assert stored_during.json() == {"detail": "database unavailable, retry later"}


# -- payment gateway -----------------------------------------------------------------------------

async def test_payment_gateway_errors_leave_orders_payments_and_stock_consistent(backend: Backend,
                                                                                tmp_path: Path) -> None:
    app = make_app(backend, tmp_path, fds_fail_policy="approve")
    service = {"Authorization": f"Bearer {issue_token(app.state.settings.jwt_secret, 'ops', 'service', 60)}"}
    async with serve(app) as client:
        auth = await shopper(client)
        stock = (await client.get("/v1/products/11")).json()["stock"]
        placed = []
        outage = await client.put("/internal/faults/payment-errors", json={"value": "100%"}, headers=service)
        assert outage.status_code == 200
        for i in range(6):  # the gateway fails for the first three, then recovers
            if i == 3:
                assert (await client.delete("/internal/faults/payment-errors", headers=service)).status_code == 200
            await fill_cart(client, auth, (11, 1 + i))
            key = {**auth, "Idempotency-Key": f"pay-{i}"}
            first = (await client.post("/v1/orders", json=checkout_body(), headers=key)).json()
            retry = await client.post("/v1/orders", json=checkout_body(), headers=key)
            assert retry.status_code == 200 and retry.json() == first
            placed.append(first)
        product = (await client.get("/v1/products/11")).json()
        async with app.state.db.sessions() as session:
            payments = dict((await session.execute(select(Payment.order_id, Payment.status))).all())
    assert [(o["status"], o["cancel_reason"]) for o in placed] == \
        [("cancelled", "payment_failed")] * 3 + [("processing", None)] * 3
    assert {o["order_id"]: o["payment"]["status"] for o in placed} == payments  # one payment row each
    assert product["stock"] == stock - sum(1 + i for i in range(3, 6))  # failed orders gave theirs back


# -- idempotency across processes ----------------------------------------------------------------

@asynccontextmanager
async def shop_process(backend: Backend, tmp_path: Path) -> AsyncIterator[str]:
    """The ecommerce service as a uvicorn process on the test's PostgreSQL and Redis, the FDS
    unreachable and the fail policy approve, payments taking 50 ms (a wider window for races)."""
    env = {"DATABASE_URL": backend.overrides["database_url"], "REDIS_URL": backend.overrides["redis_url"],
           "SHOPFDS_CACHE_PREFIX": backend.overrides["cache_prefix"], "SHOPFDS_FDS_URL": "http://127.0.0.1:9",
           "SHOPFDS_FDS_FAIL_POLICY": "approve", "SHOPFDS_PAYMENT_LATENCY_MS": "50",
           "SHOPFDS_DATA_DIR": str(tmp_path / "data"), "SHOPFDS_TRACE_STORE_DIR": str(tmp_path / "traces")}
    with ExitStack() as stack:
        yield await asyncio.to_thread(stack.enter_context, uvicorn_app(
            "services.ecommerce.main:app", env, tmp_path / "shop.log"))


@POSTGRES_ONLY
async def test_concurrent_retries_over_http_and_across_processes_make_one_order_and_one_payment(
        backend: Backend, tmp_path: Path) -> None:
    """The same click sent eight times at once: four over real HTTP to a uvicorn process, four to
    a second instance of the service in this process, both on one PostgreSQL database."""
    app = make_app(backend, tmp_path, fds_fail_policy="approve", payment_latency_ms=50)
    async with serve(app) as two:  # first: it creates the tables the process then finds
        async with shop_process(backend, tmp_path) as url, httpx.AsyncClient(base_url=url, timeout=30) as one:
            auth = await shopper(one)
            stock = (await one.get("/v1/products/14")).json()["stock"]
            await fill_cart(two, auth, (14, 3))
            headers = {**auth, "Idempotency-Key": "double-click"}
            responses = await asyncio.gather(*(shop.post("/v1/orders", json=checkout_body(), headers=headers)
                                               for _ in range(4) for shop in (one, two)))
            final = (await one.get(f"/v1/orders/{responses[0].json()['order_id']}", headers=auth)).json()
            charged = [_sum(await _scrape(shop), "ecommerce_payments_total") for shop in (one, two)]
        async with app.state.db.sessions() as session:
            orders = (await session.execute(select(Order.id))).scalars().all()
            payments = (await session.execute(select(Payment.order_id, Payment.status))).all()
            left = await session.scalar(select(Product.stock).where(Product.id == 14))
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201], [r.text for r in responses]
    assert len({r.json()["order_id"] for r in responses}) == 1
    assert (final["status"], final["payment"]["status"]) == ("processing", "succeeded")
    assert orders == [final["order_id"]] and [tuple(p) for p in payments] == [(final["order_id"], "succeeded")]
    assert left == stock - 3
    assert sum(charged) == 1
