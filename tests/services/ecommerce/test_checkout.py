"""Checkout with the FDS unreachable (the fail policy), idempotent retries, card validation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.ecommerce.models import Order, Payment, Product
from tests.conftest import samples

from ..conftest import Backend, serve
from .conftest import CARD, checkout_body, counter, fill_cart, make_app, shopper


async def test_fds_down_holds_the_order_for_review(backend: Backend, tmp_path: Path) -> None:
    app = make_app(backend, tmp_path)
    async with serve(app) as client:
        auth = await shopper(client)
        stock = (await client.get("/v1/products/2")).json()["stock"]
        await fill_cart(client, auth, (2, 2), (5, 1))
        price2, price5 = [(await client.get(f"/v1/products/{i}")).json()["price"] for i in (2, 5)]
        response = await client.post("/v1/orders", json=checkout_body(), headers=auth)
        cart = (await client.get("/v1/cart", headers=auth)).json()
        product = (await client.get("/v1/products/2")).json()
    assert response.status_code == 201
    order = response.json()
    assert (order["status"], order["next_action"]) == ("pending", "review")
    assert order["total_amount"] == 2 * price2 + price5 and order["currency"] == "KRW"
    assert [(i["product_id"], i["quantity"]) for i in order["items"]] == [(2, 2), (5, 1)]
    assert order["fds"]["degraded"] is True and order["fds"]["decision"] == "hold"
    assert order["fds"]["risk_factors"] == ["fds_unavailable"]
    assert order["payment"] == {"status": "pending", "method": "card", "card_bin": CARD[:6],
                                "card_last4": CARD[-4:]}
    assert cart["items"] == [] and product["stock"] == stock - 2
    telemetry = app.state.telemetry
    assert counter(samples(telemetry, "ecommerce_fds_evaluations"), result="error") == 1
    assert counter(samples(telemetry, "ecommerce_orders"), status="pending") == 1
    assert counter(samples(telemetry, "ecommerce_order_items")) == 3
    assert counter(samples(telemetry, "ecommerce_payments")) == 0
    durations = samples(telemetry, "ecommerce_fds_evaluation_duration_seconds")
    assert [s.value for s in durations if s.name.endswith("_count")] == [1]


@pytest.mark.parametrize(("policy", "status", "reason"), [("block", "cancelled", "fraud_blocked:fds_unavailable"),
                                                          ("approve", "processing", None)])
async def test_fail_policy_block_and_approve(backend: Backend, tmp_path: Path, policy: str, status: str,
                                             reason: str | None) -> None:
    app = make_app(backend, tmp_path, fds_fail_policy=policy)
    async with serve(app) as client:
        auth = await shopper(client)
        stock = (await client.get("/v1/products/4")).json()["stock"]
        await fill_cart(client, auth, (4, 3))
        order = (await client.post("/v1/orders", json=checkout_body("kakao_pay"), headers=auth)).json()
        product = (await client.get("/v1/products/4")).json()
    assert (order["status"], order["cancel_reason"], order["next_action"]) == (status, reason, None)
    payments = samples(app.state.telemetry, "ecommerce_payments")
    if policy == "block":
        assert product["stock"] == stock  # given back
        assert counter(payments) == 0 and order["payment"]["status"] == "pending"
        assert counter(samples(app.state.telemetry, "ecommerce_transactions"), status="blocked") == 1
    else:
        assert order["payment"] == {"status": "succeeded", "method": "kakao_pay", "card_bin": None,
                                    "card_last4": None}
        assert counter(payments, status="succeeded", payment_method="kakao_pay") == 1
        revenue = samples(app.state.telemetry, "ecommerce_payment_amount")
        assert counter(revenue) == order["total_amount"]
        assert counter(samples(app.state.telemetry, "ecommerce_transaction_amount")) == order["total_amount"]


async def test_idempotent_retries_make_one_order_and_one_payment(backend: Backend, tmp_path: Path) -> None:
    app = make_app(backend, tmp_path, fds_fail_policy="approve")
    async with serve(app) as client:
        auth = await shopper(client)
        await fill_cart(client, auth, (8, 1))
        headers = {**auth, "Idempotency-Key": "checkout-42"}
        first = await client.post("/v1/orders", json=checkout_body(), headers=headers)
        retry = await client.post("/v1/orders", json=checkout_body(), headers=headers)
        await fill_cart(client, auth, (9, 1))
        other = await client.post("/v1/orders", json=checkout_body(), headers={**auth, "Idempotency-Key": "k2"})
    assert (first.status_code, retry.status_code, other.status_code) == (201, 200, 201)
    assert retry.json() == first.json()
    assert other.json()["order_id"] != first.json()["order_id"]
    async with app.state.db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 2
        assert await session.scalar(select(func.count()).select_from(Payment)) == 2


async def test_concurrent_retries_make_one_order_and_one_payment(backend: Backend, tmp_path: Path) -> None:
    app = make_app(backend, tmp_path, fds_fail_policy="approve", payment_latency_ms=20)
    async with serve(app) as client:
        auth = await shopper(client)
        stock = (await client.get("/v1/products/12")).json()["stock"]
        await fill_cart(client, auth, (12, 2))
        headers = {**auth, "Idempotency-Key": "same-click"}
        responses = await asyncio.gather(*(client.post("/v1/orders", json=checkout_body(), headers=headers)
                                           for _ in range(6)))
        final = (await client.get(f"/v1/orders/{responses[0].json()['order_id']}", headers=auth)).json()
        product = (await client.get("/v1/products/12")).json()
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 5 + [201]
    assert len({r.json()["order_id"] for r in responses}) == 1
    assert final["status"] == "processing" and final["payment"]["status"] == "succeeded"
    assert product["stock"] == stock - 2
    async with app.state.db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 1
        assert await session.scalar(select(func.count()).select_from(Payment)) == 1
    assert counter(samples(app.state.telemetry, "ecommerce_payments")) == 1


@pytest.mark.parametrize("payment", [
    {"card_number": "4111111111111112"},  # Luhn fails
    {"card_number": "4111-abcd-1111-1111"},
    {"expiry": "01/20"},  # in the past
    {"expiry": "13/30"},
    {"expiry": "1230"},
    {"cvv": "12"},
    {"cvv": "12345"},
    {"card_number": None},
    {"method": "cash"},
])
async def test_bad_payment_details_are_422(backend: Backend, tmp_path: Path, payment: dict[str, object]) -> None:
    app = make_app(backend, tmp_path)
    async with serve(app) as client:
        auth = await shopper(client)
        await fill_cart(client, auth)
        body = checkout_body()
        body["payment"] = {k: v for k, v in {**body["payment"], **payment}.items() if v is not None}
        response = await client.post("/v1/orders", json=body, headers=auth)
        cart = (await client.get("/v1/cart", headers=auth)).json()
    assert response.status_code == 422
    assert CARD[:12] not in response.text and "4111111111111112" not in response.text
    assert len(cart["items"]) == 1  # nothing was ordered


async def test_bad_checkout_envelope(backend: Backend, tmp_path: Path) -> None:
    async with serve(make_app(backend, tmp_path)) as client:
        auth = await shopper(client)
        empty = await client.post("/v1/orders", json=checkout_body(), headers=auth)
        await fill_cart(client, auth)
        country = await client.post("/v1/orders", json={**checkout_body(), "billing_country": "Korea"},
                                    headers=auth)
        long_key = await client.post("/v1/orders", json=checkout_body(), headers={**auth, "Idempotency-Key": "k" * 65})
        anonymous = await client.post("/v1/orders", json=checkout_body())
    assert empty.status_code == 409
    assert (country.status_code, long_key.status_code, anonymous.status_code) == (422, 422, 401)


async def test_not_enough_stock_is_409_and_orders_nothing(backend: Backend, tmp_path: Path) -> None:
    app = make_app(backend, tmp_path, fds_fail_policy="approve")
    async with serve(app) as client:
        stock = (await client.get("/v1/products/20")).json()["stock"]
        buyers = [await shopper(client) for _ in range(stock // 99 + 1)]
        for auth in buyers:
            await fill_cart(client, auth, (20, 99))
        results = [await client.post("/v1/orders", json=checkout_body(), headers=auth) for auth in buyers]
        product = (await client.get("/v1/products/20")).json()
    assert results[-1].status_code == 409
    assert all(r.status_code == 201 for r in results[:-1])
    assert product["stock"] == stock - 99 * (len(buyers) - 1)


async def test_order_total_over_the_limit_is_422(backend: Backend, tmp_path: Path) -> None:
    app = make_app(backend, tmp_path)
    async with serve(app) as client:
        async with app.state.db.sessions() as session:  # a catalog dearer than the demo one
            session.add(Product(id=1000, name="Gold Bar", category="luxury", price=20_000_000, stock=100))
            await session.commit()
        auth = await shopper(client)
        await fill_cart(client, auth, (1000, 60))
        response = await client.post("/v1/orders", json=checkout_body(), headers=auth)
        cart = (await client.get("/v1/cart", headers=auth)).json()
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["cart"]
    assert len(cart["items"]) == 1
