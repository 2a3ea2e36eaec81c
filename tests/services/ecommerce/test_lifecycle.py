"""After checkout: review of held orders, status transitions, payment failures, ownership,
and that a card number is never stored."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from services.ecommerce.models import Base
from tests.conftest import samples

from ..conftest import Backend, serve
from .conftest import CARD, checkout_body, counter, fill_cart, make_app, shopper, staff


async def _held_order(client, auth) -> dict:  # type: ignore[no-untyped-def]
    await fill_cart(client, auth, (1, 1), (30, 2))
    response = await client.post("/v1/orders", json=checkout_body(), headers=auth)
    assert response.status_code == 201 and response.json()["next_action"] == "review"
    return response.json()


async def test_review_approve_pays_and_ships(backend: Backend, tmp_path: Path) -> None:
    app = make_app(backend, tmp_path)
    async with serve(app) as client:
        auth = await shopper(client)
        order = await _held_order(client, auth)
        url = f"/v1/orders/{order['order_id']}"
        as_user = await client.post(f"{url}/review", json={"decision": "approve"}, headers=auth)
        early = await client.post(f"{url}/status", json={"status": "shipped"}, headers=staff(app))
        approved = await client.post(f"{url}/review", json={"decision": "approve"}, headers=staff(app, "service"))
        twice = await client.post(f"{url}/review", json={"decision": "block"}, headers=staff(app))
        skipped = await client.post(f"{url}/status", json={"status": "delivered"}, headers=staff(app))
        shipped = await client.post(f"{url}/status", json={"status": "shipped"}, headers=staff(app))
        delivered = await client.post(f"{url}/status", json={"status": "delivered"}, headers=staff(app))
        late_cancel = await client.post(f"{url}/status", json={"status": "cancelled"}, headers=staff(app))
        bogus = await client.post(f"{url}/status", json={"status": "pending"}, headers=staff(app))
        seen = (await client.get(url, headers=auth)).json()
    assert as_user.status_code == 403
    assert (early.status_code, twice.status_code, skipped.status_code) == (409, 409, 409)
    assert approved.status_code == 200
    assert approved.json()["status"] == "processing" and approved.json()["next_action"] is None
    assert approved.json()["payment"]["status"] == "succeeded"
    assert shipped.json()["status"] == "shipped" and delivered.json()["status"] == "delivered"
    assert (late_cancel.status_code, bogus.status_code) == (409, 422)
    assert seen["status"] == "delivered"
    orders = samples(app.state.telemetry, "ecommerce_orders")
    assert {s: counter(orders, status=s) for s in ("pending", "processing", "shipped", "delivered", "cancelled")} \
        == {"pending": 1, "processing": 1, "shipped": 1, "delivered": 1, "cancelled": 0}
    assert counter(samples(app.state.telemetry, "ecommerce_transactions"), status="completed") == 1
    durations = samples(app.state.telemetry, "ecommerce_transaction_processing_duration_seconds")
    assert {s.labels["transaction_type"] for s in durations if s.name.endswith("_count")} == {"checkout", "payment"}


async def test_review_block_cancels_and_restocks(backend: Backend, tmp_path: Path) -> None:
    app = make_app(backend, tmp_path)
    async with serve(app) as client:
        auth = await shopper(client)
        stock = (await client.get("/v1/products/30")).json()["stock"]
        order = await _held_order(client, auth)
        blocked = await client.post(f"/v1/orders/{order['order_id']}/review", json={"decision": "block"},
                                    headers=staff(app))
        product = (await client.get("/v1/products/30")).json()
    assert blocked.json()["status"] == "cancelled"
    assert blocked.json()["cancel_reason"] == "fraud_blocked:review"
    assert product["stock"] == stock


async def test_staff_cancel_of_a_processing_order(backend: Backend, tmp_path: Path) -> None:
    app = make_app(backend, tmp_path, fds_fail_policy="approve")
    async with serve(app) as client:
        auth = await shopper(client)
        await fill_cart(client, auth)
        order = (await client.post("/v1/orders", json=checkout_body(), headers=auth)).json()
        cancelled = await client.post(f"/v1/orders/{order['order_id']}/status", json={"status": "cancelled"},
                                      headers=staff(app))
        again = await client.post(f"/v1/orders/{order['order_id']}/status", json={"status": "cancelled"},
                                  headers=staff(app))
    assert order["status"] == "processing"
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["cancel_reason"] == "cancelled_by_staff"
    assert again.status_code == 409


async def test_payment_failure_cancels_the_order(backend: Backend, tmp_path: Path) -> None:
    app = make_app(backend, tmp_path, fds_fail_policy="approve", payment_failure_rate=1.0)
    async with serve(app) as client:
        auth = await shopper(client)
        stock = (await client.get("/v1/products/6")).json()["stock"]
        await fill_cart(client, auth, (6, 2))
        order = (await client.post("/v1/orders", json=checkout_body(), headers=auth)).json()
        product = (await client.get("/v1/products/6")).json()
    assert (order["status"], order["cancel_reason"]) == ("cancelled", "payment_failed")
    assert order["payment"]["status"] == "failed"
    assert product["stock"] == stock
    telemetry = app.state.telemetry
    assert counter(samples(telemetry, "ecommerce_payments"), status="failed", payment_method="card") == 1
    assert counter(samples(telemetry, "ecommerce_transactions"), status="failed") == 1
    assert counter(samples(telemetry, "ecommerce_payment_amount")) == 0
    assert counter(samples(telemetry, "ecommerce_orders"), status="cancelled") == 1


async def test_orders_are_private_and_unknown_ids_404(backend: Backend, tmp_path: Path) -> None:
    app = make_app(backend, tmp_path)
    async with serve(app) as client:
        owner = await shopper(client)
        other = await shopper(client)
        order = await _held_order(client, owner)
        url = f"/v1/orders/{order['order_id']}"
        mine = await client.get(url, headers=owner)
        theirs = await client.get(url, headers=other)
        as_admin = await client.get(url, headers=staff(app))
        verify_theirs = await client.post(f"{url}/verify", json={"code": "000000"}, headers=other)
        verify_held = await client.post(f"{url}/verify", json={"code": "000000"}, headers=owner)
        unknown = [await client.get("/v1/orders/no-such-order", headers=owner),
                   await client.post("/v1/orders/no-such-order/review", json={"decision": "approve"},
                                     headers=staff(app)),
                   await client.post("/v1/orders/no-such-order/status", json={"status": "shipped"},
                                     headers=staff(app))]
        anonymous = await client.get(url)
    assert mine.json() == as_admin.json() == order
    assert theirs.status_code == 404 and verify_theirs.status_code == 404
    assert verify_held.status_code == 409
    assert [r.status_code for r in unknown] == [404, 404, 404]
    assert anonymous.status_code == 401


@pytest.mark.parametrize("card", [CARD, "4111 1111 1111 1111", "5500-0000-0000-0004"])
async def test_card_number_and_cvv_are_never_stored(backend: Backend, tmp_path: Path, card: str) -> None:
    app = make_app(backend, tmp_path, fds_fail_policy="approve")
    async with serve(app) as client:
        auth = await shopper(client)
        await fill_cart(client, auth)
        order = (await client.post("/v1/orders", json=checkout_body(card_number=card, cvv="987"),
                                   headers=auth)).json()
        dump = await _dump_tables(app)
    digits = card.replace(" ", "").replace("-", "")
    assert order["payment"]["card_bin"] == digits[:6] and order["payment"]["card_last4"] == digits[-4:]
    assert digits[-4:] in dump  # the dump does hold the order's rows
    compact = dump.replace(" ", "").replace("-", "")
    # Neither the number nor its BIN + middle or middle + last 4 (timestamps and ids may hold
    # any short digit run, so the pieces are checked where they would betray the number).
    assert digits not in compact and digits[:12] not in compact and digits[6:] not in compact
    assert "987" not in re.findall(r"[A-Za-z0-9]+", dump)  # the CVV as a value of its own


async def _dump_tables(app) -> str:  # type: ignore[no-untyped-def]
    """Every row of every ecommerce table, as text."""
    out: list[str] = []
    async with app.state.db.sessions() as session:
        for table in Base.metadata.sorted_tables:
            rows = await session.execute(text(f"SELECT * FROM {table.name}"))
            # Timestamps left out: their microseconds may hold any short digit run.
            out.extend(" ".join(str(v) for v in row if not isinstance(v, datetime | date)) for row in rows)
    return "\n".join(out)
