"""The order flow: checkout -> FDS verdict -> payment, and what reviewers and staff do after.

    approve          -> payment -> processing (or cancelled "payment_failed")
    additional_auth  -> pending, next_action "verify" -> correct code -> payment
    hold             -> pending, next_action "review" -> approve -> payment | block -> cancelled
    block            -> cancelled "fraud_blocked:<factors>"
    status route     -> processing -> shipped -> delivered; pending|processing -> cancelled

Every move is a compare-and-set (``orders.move``), so racing requests cannot pay an order
twice or move it along an illegal edge; the payment row's unique ``order_id`` is the last guard.
Cancelling returns the items to stock. A retry (same Idempotency-Key) of an approved order that
has no payment row yet pays it: that is where a database outage mid-checkout leaves one.
"""

from __future__ import annotations

import hmac
import time
import uuid
from typing import Any

from fastapi import HTTPException, status
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

import otel_setup

from . import orders
from .fds_client import FdsClient
from .metrics import ShopMetrics
from .models import Order, Payment, User
from .payment import PaymentGateway
from .product_cache import ProductCache, product_key
from .schemas import CheckoutIn

NEXT_ACTION = {"additional_auth": "verify", "hold": "review"}
TRANSACTION_NAMESPACE = uuid.UUID("5b0c3f2e-6a43-4f0e-9d0b-1f3e2c9a7d11")
STATUS_EDGES = {"shipped": ("processing",), "delivered": ("shipped",), "cancelled": ("pending", "processing")}


class Shop:
    def __init__(self, fds: FdsClient, gateway: PaymentGateway, products: ProductCache,
                 metrics: ShopMetrics, verify_code: str) -> None:
        self.fds = fds
        self.gateway = gateway
        self.products = products
        self.metrics = metrics
        self.verify_code = verify_code

    async def checkout(self, session: AsyncSession, user: User, key: str | None, body: CheckoutIn,
                       ip: str) -> tuple[Order, bool]:
        started = time.perf_counter()
        order, created = await orders.create_from_cart(session, user, key, body, ip)
        if not created:
            return await self._resume(session, order), False
        self.metrics.order_status("pending")
        self.metrics.order_items(sum(item.quantity for item in order.items))
        for item in order.items:
            await self.products.delete(product_key(item.product_id))
        otel_setup.add_breadcrumb("order created", category="order",
                                  data={"order_id": order.id, "amount": order.total_amount})
        await session.commit()  # no transaction (nor connection) held across the FDS call
        verdict = await self.fds.evaluate(_transaction(order, user))
        order = await self._apply(session, order, verdict)
        self.metrics.checkout_duration(time.perf_counter() - started)
        return order, True

    async def _resume(self, session: AsyncSession, order: Order) -> Order:
        """A retry finishes a checkout that a failure cut short between the approval and the
        payment row (the database went away): it pays now. ``pay`` writes the payment row before
        charging and its ``order_id`` is unique, so a retry racing the original charges once."""
        approved = (order.fds or {}).get("decision") == "approve"
        if approved and (order.status, order.next_action, order.payment) == ("pending", None, None):
            return await self.pay(session, order.id)
        return order

    async def _apply(self, session: AsyncSession, order: Order, verdict: dict[str, Any]) -> Order:
        """``order`` is the one ``create_from_cart`` built: while each move succeeds it is kept
        up to date here instead of re-read; a move that loses a race re-reads."""
        decision = verdict["decision"]
        if decision == "block":
            factors = ",".join(verdict["risk_factors"])
            self.metrics.blocked(order.total_amount)
            return await self.cancel(session, order, f"fraud_blocked:{factors}" if factors else "fraud_blocked",
                                     fds=verdict)
        # The verdict is committed before the payment row: a retry after an outage between the
        # two finds an approved order without payment and pays it (``_resume``).
        approve = decision == "approve"
        if not await orders.move(session, order.id, ("pending",), when_action=None, fds=verdict,
                                 next_action=NEXT_ACTION.get(decision)):
            return await self.pay(session, order.id) if approve else await orders.load(session, order.id)
        order.fds, order.next_action = verdict, NEXT_ACTION.get(decision)
        return await self.pay(session, order.id, order) if approve else order

    async def pay(self, session: AsyncSession, order_id: str, fresh: Order | None = None) -> Order:
        """Write the payment row (and commit), charge, record the outcome. ``fresh``: the order
        as this request has just written it (not re-read, and kept up to date)."""
        order = fresh if fresh is not None else await orders.load(session, order_id)
        if order.status != "pending":  # moved (e.g. cancelled by staff) since it was approved
            return order
        payment: dict[str, Any] = {"order_id": order.id, "status": "pending", "method": order.payment_method,
                                   "amount": order.total_amount, "card_bin": order.card_bin,
                                   "card_last4": order.card_last4,
                                   # the charge's idempotency key at the gateway (the reconciler's lookup)
                                   "gateway_key": str(uuid.uuid4())}
        try:
            await session.execute(insert(orders.PAYMENTS).values(payment))
            await session.commit()
        except IntegrityError:  # this order is already being paid: never charge twice
            await session.rollback()
            return await orders.load(session, order_id)
        approved = await self.gateway.charge(order.total_amount, order.payment_method,
                                             order.card_bin, order.card_last4, key=payment["gateway_key"])
        payment["status"] = "succeeded" if approved else "failed"
        self.metrics.payment(payment["status"], payment["method"], payment["amount"])
        await orders.set_payment_status(session, order_id, payment["status"])
        if not approved:
            await session.commit()
            return await self.cancel(session, order, "payment_failed")
        if await orders.move(session, order_id, ("pending",), status="processing", next_action=None):
            self.metrics.order_status("processing")
            if fresh is not None:
                fresh.status, fresh.payment = "processing", Payment(**payment)
                return fresh
        return await orders.load(session, order_id)

    async def cancel(self, session: AsyncSession, order: Order, reason: str, *,
                     statuses: tuple[str, ...] = STATUS_EDGES["cancelled"], when_action: Any = orders.ANY,
                     fds: dict[str, Any] | None = None) -> Order:
        order_id, items = order.id, list(order.items)  # read now: a rollback expires ``order``
        values: dict[str, Any] = {"status": "cancelled", "next_action": None, "cancel_reason": reason}
        if fds is not None:
            values["fds"] = fds
        if not await orders.move(session, order_id, statuses, when_action=when_action, commit=False, **values):
            await session.rollback()
            raise _conflict(await orders.load(session, order_id), "cancelled")
        await orders.restock(session, items)
        await session.commit()
        self.metrics.order_status("cancelled")
        for item in items:
            await self.products.delete(product_key(item.product_id))
        return await orders.load(session, order_id)

    async def verify(self, session: AsyncSession, order: Order, code: str) -> Order:
        if (order.status, order.next_action) != ("pending", "verify"):
            raise _conflict(order, "verified")
        if not hmac.compare_digest(code.encode(), self.verify_code.encode()):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "wrong verification code")
        if not await orders.move(session, order.id, ("pending",), when_action="verify", next_action=None):
            raise _conflict(await orders.load(session, order.id), "verified")
        return await self.pay(session, order.id)

    async def review(self, session: AsyncSession, order: Order, decision: str) -> Order:
        if (order.status, order.next_action) != ("pending", "review"):
            raise _conflict(order, "reviewed")
        if decision == "block":
            self.metrics.blocked(order.total_amount)
            return await self.cancel(session, order, "fraud_blocked:review", statuses=("pending",),
                                     when_action="review")
        if not await orders.move(session, order.id, ("pending",), when_action="review", next_action=None):
            raise _conflict(await orders.load(session, order.id), "reviewed")
        return await self.pay(session, order.id)

    async def set_status(self, session: AsyncSession, order: Order, new: str) -> Order:
        if new == "cancelled":
            return await self.cancel(session, order, "cancelled_by_staff")
        if not await orders.move(session, order.id, STATUS_EDGES[new], status=new):
            raise _conflict(await orders.load(session, order.id), new)
        self.metrics.order_status(new)
        return await orders.load(session, order.id)


def _conflict(order: Order, wanted: str) -> HTTPException:
    action = f" (next action {order.next_action})" if order.next_action else ""
    return HTTPException(status.HTTP_409_CONFLICT, f"order is {order.status}{action}; it cannot be {wanted}")


def _transaction(order: Order, user: User) -> dict[str, Any]:
    """The FDS ``Transaction`` for this checkout. Its id is derived from the order's, so asking
    again (the reconciler, after a cut) gets the FDS's first answer: it is idempotent per id."""
    created = orders.aware(order.created_at)
    return {
        "transaction_id": str(uuid.uuid5(TRANSACTION_NAMESPACE, order.id)),
        "order_id": order.id, "user_id": order.user_id,
        "amount": float(order.total_amount), "currency": order.currency, "payment_method": order.payment_method,
        "card_bin": order.card_bin, "card_last4": order.card_last4, "ip_address": order.ip_address,
        "device_id": order.device_id, "email": user.email, "billing_country": order.billing_country,
        "shipping_country": order.shipping_country, "created_at": created.isoformat(),
    }
