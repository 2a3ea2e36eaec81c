"""The reconciler settles what a cut checkout left pending; real PostgreSQL, a proxy the test cuts.

The shop reaches its database through a TCP proxy cut at one statement of the checkout (the
real FDS answers in-process, on its own connection). The shopper does not retry: one round of
the reconciler, run as the periodic task runs it, must leave the order terminal or in the staff
review list, the payment row settled, one FDS evaluation and at most one charge, the stock right.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from otel_setup.settings import TelemetrySettings
from services.ecommerce.models import Order, Payment, Product
from services.fds.app import create_app as create_fds_app
from services.fds.models import EvaluationRow
from services.fds.settings import Settings as FdsSettings
from tests.conftest import samples
from tests.reliability.test_dependencies import POSTGRES_ONLY, postgres_proxy
from tests.services.conftest import Backend, serve
from tests.services.conftest import backend as backend  # the fixture: embedded, and PostgreSQL + Redis
from tests.services.ecommerce.conftest import checkout_body, fill_cart, make_app, shopper

# cut at, gateway declines?, what one round makes of the order: (step, outcome, payment, charges)
CASES = {
    "order insert": (b"INSERT INTO ecommerce_orders", 0.0, None),
    "verdict write": (b"fds=$2", 0.0, ("verdict", "processing", "succeeded", 1)),
    "payment row": (b"INSERT INTO ecommerce_payments", 0.0, ("payment_row", "processing", "succeeded", 1)),
    "payment result": (b"UPDATE ecommerce_payments", 0.0, ("payment_result", "processing", "succeeded", 1)),
    "payment result, declined": (b"UPDATE ecommerce_payments", 1.0, ("payment_result", "cancelled", "failed", 1)),
}


@asynccontextmanager
async def shop_and_fds(backend: Backend, through: Backend, tmp_path: Path, **shop: Any) -> AsyncIterator[
        tuple[httpx.AsyncClient, Any, Any]]:
    fds = create_fds_app(FdsSettings(**backend.overrides, ml_url="http://127.0.0.1:9"),
                         telemetry_settings=TelemetrySettings(trace_store_dir=str(tmp_path / "fds-traces")))
    async with serve(fds):
        app = make_app(through, tmp_path, fds_transport=httpx.ASGITransport(app=fds), fds_timeout=5.0,
                       reconcile=False, reconcile_after_seconds=0, **shop)
        async with serve(app) as client:
            yield client, app, fds


@POSTGRES_ONLY
@pytest.mark.parametrize("case", list(CASES))
async def test_one_round_settles_a_checkout_cut_at_each_step(backend: Backend, tmp_path: Path, case: str) -> None:
    pattern, decline, expected = CASES[case]
    async with postgres_proxy(backend) as (pg, through), \
            shop_and_fds(backend, through, tmp_path, payment_failure_rate=decline) as (client, app, fds):
            auth = await shopper(client)
            stock = (await client.get("/v1/products/3")).json()["stock"]
            await fill_cart(client, auth, (3, 2))
            pg.cut_on(pattern)
            cut = await client.post("/v1/orders", json=checkout_body(),
                                    headers={**auth, "Idempotency-Key": f"r-{uuid.uuid4().hex[:8]}"})
            assert pg.tripped.is_set(), "the outage did not happen at the chosen statement"
            await pg.restore()
            settled = await app.state.reconciler.run_once()
            again = await app.state.reconciler.run_once()  # nothing left: a second round settles nothing
            async with app.state.db.sessions() as session:
                orders = [tuple(r) for r in (await session.execute(
                    select(Order.id, Order.status, Order.next_action))).all()]
                payments = list((await session.execute(select(Payment.status))).scalars())
                left = await session.scalar(select(Product.stock).where(Product.id == 3))
            async with fds.state.db.sessions() as session:
                await fds.state.writer.flush()
                evaluations = await session.scalar(select(func.count()).select_from(EvaluationRow))
            counted = {(s.labels["step"], s.labels["outcome"]): s.value
                       for s in samples(app.state.telemetry, "ecommerce_orders_reconciled")
                       if s.name.endswith("_total") and s.value}
            charges = app.state.shop.gateway.charges
    assert cut.status_code == 503, cut.text
    assert again == {}
    if expected is None:  # nothing was written: nothing to settle
        assert settled == {} and orders == [] and left == stock and charges == 0
        return
    step, outcome, payment, charged = expected
    ((order_id, status, next_action),) = orders
    assert settled == {order_id: outcome}
    assert (status, next_action) == (outcome, None)
    assert payments == [payment] and charges == charged
    assert evaluations == 1  # asked again after the cut, the FDS answered its first verdict
    assert left == (stock if outcome == "cancelled" else stock - 2)
    assert counted == {(step, outcome): 1}


async def test_an_order_waiting_for_a_verification_past_the_bound_goes_to_staff_review(
        backend: Backend, tmp_path: Path) -> None:
    async with shop_and_fds(backend, backend, tmp_path) as (client, app, _):  # both back ends, no proxy
            auth = await shopper(client)
            await fill_cart(client, auth, (3, 1))
            order = (await client.post("/v1/orders", json=checkout_body(), headers=auth)).json()
            async with app.state.db.sessions() as session:  # as if the FDS had asked for verification
                row = await session.get(Order, order["order_id"])
                row.status, row.next_action = "pending", "verify"
                await session.commit()
            settled = await app.state.reconciler.run_once()
            after = (await client.get(f"/v1/orders/{order['order_id']}", headers=auth)).json()
    assert settled == {order["order_id"]: "review"}
    assert (after["status"], after["next_action"]) == ("pending", "review")


@POSTGRES_ONLY
async def test_a_checkout_whose_commit_answer_is_lost_goes_on_and_is_counted_once(backend: Backend,
                                                                                   tmp_path: Path) -> None:
    """The connection resets after PostgreSQL committed the order but before the shop heard it
    (a ``pg_terminate_backend`` at the wrong moment): the order exists, so the checkout goes on,
    and the orders counter equals the orders in the database (the soak found one short per such cut)."""
    async with postgres_proxy(backend) as (pg, through), shop_and_fds(backend, through, tmp_path) as (client, app, _):
        auth = await shopper(client)
        await fill_cart(client, auth, (3, 1))
        pg.reset_after_reply_to(b"COMMIT")
        answer = await client.post("/v1/orders", json=checkout_body(),
                                   headers={**auth, "Idempotency-Key": f"l-{uuid.uuid4().hex[:8]}"})
        assert pg.tripped.is_set(), "no commit answer was lost"
        async with app.state.db.sessions() as session:
            rows = await session.scalar(select(func.count()).select_from(Order))
        created = sum(s.value for s in samples(app.state.telemetry, "ecommerce_orders")
                      if s.name.endswith("_total") and s.labels.get("status") == "pending")
    assert answer.status_code == 201, answer.text
    assert rows == 1 and created == 1
