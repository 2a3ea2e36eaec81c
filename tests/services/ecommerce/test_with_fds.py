"""Checkout against the real FDS app in-process: approve, additional authentication, hold
for review, block (its shipped blocklists and risky-BIN feed), and a slow FDS (fail policy).

The FDS app is built first and ecommerce last, so ecommerce's metrics are the active ones.
The ML service is unreachable, so the FDS scores with its rule and CTI engines (degraded).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from otel_setup.settings import TelemetrySettings
from services.fds.app import create_app as create_fds_app
from services.fds.settings import Settings as FdsSettings
from tests.conftest import samples

from ..conftest import Backend, serve
from .conftest import DEAD_FDS, checkout_body, counter, fill_cart, make_app, shopper, staff

RISKY_BIN_CARD = "4263980000000007"  # BIN 426398 is in services/fds/feeds/risky_bins.txt
BLOCKED_BIN_CARD = "9999990000000006"  # BIN 999999 is on the rules.yaml blocklist


@asynccontextmanager
async def shop_with_fds(backend: Backend, tmp_path: Path, delay: float = 0.0,
                        **settings: object) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, FastAPI]]:
    """(ecommerce client, FDS client, ecommerce app), the shop calling the real FDS."""
    fds = create_fds_app(FdsSettings(**backend.overrides, ml_url=DEAD_FDS),
                         telemetry_settings=TelemetrySettings(trace_store_dir=str(tmp_path / "fds-traces")))
    async with serve(fds) as fds_client:
        target = _delayed(fds, delay) if delay else fds
        settings.setdefault("fds_timeout", 5.0)  # generous: the in-process FDS shares this event loop
        app = make_app(backend, tmp_path, fds_transport=httpx.ASGITransport(app=target), **settings)
        async with serve(app) as client:
            yield client, fds_client, app


def _delayed(app: ASGIApp, seconds: float) -> ASGIApp:
    """The real FDS behind a slow network."""
    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(seconds)
        await app(scope, receive, send)

    return slow


async def test_clean_checkout_is_approved_and_paid(backend: Backend, tmp_path: Path) -> None:
    async with shop_with_fds(backend, tmp_path) as (client, fds_client, app):
        auth = await shopper(client)
        await fill_cart(client, auth, (2, 1))
        order = (await client.post("/v1/orders", json=checkout_body(), headers=auth)).json()
        stored = await fds_client.get(f"/v1/fds/transactions/{order['fds']['transaction_id']}",
                                      headers=staff(app, "service"))
    assert (order["status"], order["next_action"]) == ("processing", None)
    assert order["fds"]["decision"] == "approve" and order["fds"]["risk_level"] == "low"
    assert order["payment"]["status"] == "succeeded"
    assert stored.status_code == 200
    assert stored.json()["order_id"] == order["order_id"]
    assert stored.json()["amount"] == order["total_amount"] and stored.json()["currency"] == "KRW"
    telemetry = app.state.telemetry
    assert counter(samples(telemetry, "ecommerce_fds_evaluations"), result="approve") == 1
    assert counter(samples(telemetry, "ecommerce_fds_evaluations"), result="error") == 0
    assert counter(samples(telemetry, "ecommerce_transactions"), status="completed") == 1


async def test_risky_order_asks_for_verification(backend: Backend, tmp_path: Path) -> None:
    async with shop_with_fds(backend, tmp_path, verify_code="424242") as (client, _fds, app):
        auth = await shopper(client, f"{uuid.uuid4().hex[:10]}@mailinator.com")
        stranger = await shopper(client)
        await fill_cart(client, auth)
        body = {**checkout_body(), "shipping_country": "US"}
        order = (await client.post("/v1/orders", json=body, headers=auth)).json()
        url = f"/v1/orders/{order['order_id']}/verify"
        wrong = await client.post(url, json={"code": "000000"}, headers=auth)
        stolen = await client.post(url, json={"code": "424242"}, headers=stranger)
        right = await client.post(url, json={"code": "424242"}, headers=auth)
        again = await client.post(url, json={"code": "424242"}, headers=auth)
    assert (order["status"], order["next_action"]) == ("pending", "verify")
    assert order["fds"]["decision"] == "additional_auth"
    assert order["fds"]["risk_factors"] == ["country_mismatch", "cti_disposable_email"]
    assert (wrong.status_code, stolen.status_code, again.status_code) == (400, 404, 409)
    assert right.json()["status"] == "processing" and right.json()["payment"]["status"] == "succeeded"
    fds_results = samples(app.state.telemetry, "ecommerce_fds_evaluations")
    assert counter(fds_results, result="additional_auth") == 1


async def test_risky_card_abroad_is_held_then_approved(backend: Backend, tmp_path: Path) -> None:
    async with shop_with_fds(backend, tmp_path) as (client, fds_client, app):
        auth = await shopper(client)
        await fill_cart(client, auth)
        body = {**checkout_body(card_number=RISKY_BIN_CARD), "shipping_country": "JP"}
        order = (await client.post("/v1/orders", json=body, headers=auth)).json()
        queue = (await fds_client.get("/v1/fds/reviews", headers=staff(app))).json()
        reviewed = await client.post(f"/v1/orders/{order['order_id']}/review", json={"decision": "approve"},
                                     headers=staff(app, "service"))
    assert (order["status"], order["next_action"]) == ("pending", "review")
    assert order["fds"]["decision"] == "hold" and order["fds"]["risk_level"] == "high"
    assert order["order_id"] in [item["order_id"] for item in queue["items"]]
    assert reviewed.json()["status"] == "processing"


async def test_blocklisted_email_and_bin_are_blocked(backend: Backend, tmp_path: Path) -> None:
    async with shop_with_fds(backend, tmp_path) as (client, _fds, app):
        fraudster = await shopper(client, "fraudster@example.com")
        await fill_cart(client, fraudster)
        by_email = (await client.post("/v1/orders", json=checkout_body(), headers=fraudster)).json()
        auth = await shopper(client)
        await fill_cart(client, auth)
        by_bin = (await client.post("/v1/orders", json=checkout_body(card_number=BLOCKED_BIN_CARD),
                                    headers=auth)).json()
    assert (by_email["status"], by_email["cancel_reason"]) == ("cancelled", "fraud_blocked:blocklist_email")
    assert by_bin["cancel_reason"] == "fraud_blocked:blocklist_card_bin"
    assert by_email["payment"]["status"] == by_bin["payment"]["status"] == "pending"  # never charged
    telemetry = app.state.telemetry
    assert counter(samples(telemetry, "ecommerce_fds_evaluations"), result="block") == 2
    assert counter(samples(telemetry, "ecommerce_transactions"), status="blocked") == 2
    assert counter(samples(telemetry, "ecommerce_payments")) == 0


async def test_slow_fds_times_out_into_the_fail_policy(backend: Backend, tmp_path: Path) -> None:
    async with shop_with_fds(backend, tmp_path, delay=1.0, fds_timeout=0.05) as (client, _fds, app):
        auth = await shopper(client)
        await fill_cart(client, auth)
        order = (await client.post("/v1/orders", json=checkout_body(), headers=auth)).json()
    assert (order["status"], order["next_action"]) == ("pending", "review")
    assert order["fds"]["degraded"] is True and order["fds"]["risk_factors"] == ["fds_unavailable"]
    fds_results = samples(app.state.telemetry, "ecommerce_fds_evaluations")
    assert counter(fds_results, result="error") == 1


async def test_threat_feeds_see_the_client_ip_and_device(backend: Backend, tmp_path: Path) -> None:
    async with shop_with_fds(backend, tmp_path) as (client, _fds, app):
        auth = await shopper(client)
        await fill_cart(client, auth)
        body = {k: v for k, v in checkout_body().items() if k != "device_id"}
        kit = (await client.post("/v1/orders", json=body, headers={**auth, "X-Device-Id": "device-fraud-kit"})).json()
        # The same shop seen from an address on services/fds/feeds/bad_ips.txt.
        proxy = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=proxy, base_url="http://testserver") as from_proxy:
            await fill_cart(from_proxy, auth)
            blocked = (await from_proxy.post("/v1/orders", json=checkout_body(), headers=auth)).json()
    assert kit["fds"]["decision"] == "hold" and "cti_bad_device" in kit["fds"]["risk_factors"]
    assert blocked["status"] == "cancelled" and blocked["cancel_reason"] == "fraud_blocked:cti_bad_ip"
