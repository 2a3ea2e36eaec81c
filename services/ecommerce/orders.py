"""Orders in the database: creation from the cart (insert-first idempotency), loading with
ownership, and compare-and-set transitions so two racing requests cannot both move an order.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from fastapi import HTTPException, status
from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from services.common.money import MAX_AMOUNT, card_parts
from services.common.security import Principal

from .models import CartItem, Order, OrderItem, Payment, Product, User
from .schemas import CheckoutIn, FdsOut, OrderItemOut, OrderOut, PaymentOut

log = logging.getLogger("services.ecommerce.orders")
# The "unset" marker for ``move``: None is a real value of next_action.
ANY: Any = object()
# The tables under the models, for the Core statements of the checkout path.
ORDERS, ORDER_ITEMS, PAYMENTS, PRODUCTS, CART_ITEMS = (
    cast(Table, model.__table__) for model in (Order, OrderItem, Payment, Product, CartItem))


async def load(session: AsyncSession, order_id: str, principal: Principal | None = None) -> Order:
    """The order, re-read from the database; 404 when unknown or another shopper's. One query:
    items and payment come joined (a checkout re-reads its order three times)."""
    query = (select(Order).where(Order.id == order_id).options(joinedload(Order.items), joinedload(Order.payment))
             .execution_options(populate_existing=True))
    if principal is not None and principal.role == "user":
        query = query.where(Order.user_id == principal.subject)
    order = (await session.execute(query)).unique().scalar_one_or_none()
    if order is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "order not found")
    return order


async def find_by_key(session: AsyncSession, user_id: str, key: str) -> Order | None:
    query = select(Order).where(Order.user_id == user_id, Order.idempotency_key == key)
    return await session.scalar(query.execution_options(populate_existing=True))


async def create_from_cart(session: AsyncSession, user: User, key: str | None, body: CheckoutIn,
                           ip: str) -> tuple[Order, bool]:
    """``(order, created)``. The order row is inserted first, so a retry with the same key fails
    on the unique ``(user_id, idempotency_key)`` and returns the first order. Core statements (the
    items in one executemany), one transaction; the order comes back built from what was written,
    not re-read."""
    user_id = user.id  # read now: a rollback below expires ``user``
    lines = (await session.execute(
        select(CartItem.quantity, Product.id, Product.name, Product.price)
        .join(Product, CartItem.product_id == Product.id)
        .where(CartItem.user_id == user_id).order_by(Product.id))).all()
    total = sum(line.quantity * line.price for line in lines)
    if not lines or total > MAX_AMOUNT:
        # A retry may find its cart empty (the first attempt ordered it): that order is its answer.
        if key is not None and (existing := await find_by_key(session, user_id, key)) is not None:
            return existing, False
        if not lines:
            raise HTTPException(status.HTTP_409_CONFLICT, "the cart is empty")
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [
            {"loc": ["cart"], "msg": "order total over the limit", "type": "value_error"}])
    values = _new_order(user, key, body, ip, total)
    try:
        await session.execute(insert(ORDERS).values(values))
    except IntegrityError:
        await session.rollback()
        existing = await find_by_key(session, user_id, key or "")
        if existing is None:  # not a key clash after all
            raise
        return existing, False
    items = [{"order_id": values["id"], "product_id": line.id, "name": line.name, "quantity": line.quantity,
              "unit_price": line.price} for line in lines]
    await session.execute(insert(ORDER_ITEMS), items)
    for line in lines:
        await _take_stock(session, line.id, line.quantity)
    await session.execute(delete(CART_ITEMS).where(CART_ITEMS.c.user_id == user_id))
    try:
        await session.commit()
    except (DBAPIError, OSError, TimeoutError):
        if not await _committed(session, values["id"]):
            raise
        log.warning("the connection went with the order's commit, which had happened: the checkout goes on")
    return Order(**values, items=[OrderItem(**item) for item in items], payment=None), True


async def _committed(session: AsyncSession, order_id: str) -> bool:
    """Whether a commit whose answer was lost (the connection reset after the database did it)
    happened: asked again on a fresh connection. Without this the order would exist uncounted and
    unanswered, and the shopper's retry would find it as an old one."""
    try:
        await session.rollback()
        return await session.scalar(select(ORDERS.c.id).where(ORDERS.c.id == order_id)) is not None
    except (DBAPIError, OSError, TimeoutError):
        return False  # the database is still away: the 503 stands, the reconciler settles it


def _new_order(user: User, key: str | None, body: CheckoutIn, ip: str, total: int) -> dict[str, Any]:
    card_bin = card_last4 = None
    if body.payment.method == "card" and body.payment.card_number:
        card_bin, card_last4 = card_parts(body.payment.card_number)
    return {"id": str(uuid.uuid4()), "user_id": user.id, "idempotency_key": key, "status": "pending",
            "next_action": None, "cancel_reason": None, "total_amount": total, "currency": "KRW",
            "payment_method": body.payment.method, "card_bin": card_bin, "card_last4": card_last4,
            "billing_country": body.billing_country, "shipping_country": body.shipping_country,
            "device_id": body.device_id, "ip_address": ip, "fds": None, "created_at": datetime.now(UTC)}


async def _take_stock(session: AsyncSession, product_id: int, quantity: int) -> None:
    products = PRODUCTS.c
    taken = await session.execute(
        update(PRODUCTS).where(products.id == product_id, products.stock >= quantity)
        .values(stock=products.stock - quantity))
    if taken.rowcount == 0:  # type: ignore[attr-defined]
        await session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, f"not enough stock for product {product_id}")


async def restock(session: AsyncSession, items: Sequence[OrderItem]) -> None:
    products = PRODUCTS.c
    for item in sorted(items, key=lambda i: i.product_id):
        await session.execute(update(PRODUCTS).where(products.id == item.product_id)
                              .values(stock=products.stock + item.quantity))


async def move(session: AsyncSession, order_id: str, statuses: tuple[str, ...], *,
               when_action: Any = ANY, commit: bool = True, **values: Any) -> bool:
    """Set ``values`` only if the order is still in one of ``statuses`` (and its next_action is
    ``when_action``); False when another request moved it first. A Core statement: objects
    already loaded are not synchronised (``load`` re-reads)."""
    orders = ORDERS.c
    query = update(ORDERS).where(orders.id == order_id, orders.status.in_(statuses))
    if when_action is not ANY:
        query = query.where(orders.next_action.is_(None) if when_action is None
                            else orders.next_action == when_action)
    moved = (await session.execute(query.values(**values))).rowcount > 0  # type: ignore[attr-defined]
    if commit:
        await session.commit()
    return moved


async def set_payment_status(session: AsyncSession, order_id: str, payment_status: str) -> None:
    payments = PAYMENTS.c
    await session.execute(update(PAYMENTS).where(payments.order_id == order_id)
                          .values(status=payment_status))


def aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; everything this service stores is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def to_out(order: Order) -> OrderOut:
    payment = order.payment
    if payment is not None:
        payment_out = PaymentOut(status=payment.status, method=payment.method,  # type: ignore[arg-type]
                                 card_bin=payment.card_bin, card_last4=payment.card_last4)
    else:
        payment_out = PaymentOut(status="pending", method=order.payment_method,
                                 card_bin=order.card_bin, card_last4=order.card_last4)
    return OrderOut(
        order_id=order.id, status=order.status, next_action=order.next_action,  # type: ignore[arg-type]
        cancel_reason=order.cancel_reason, total_amount=order.total_amount, currency=order.currency,
        items=[OrderItemOut(product_id=i.product_id, name=i.name, quantity=i.quantity, unit_price=i.unit_price)
               for i in order.items],
        fds=FdsOut.model_validate(order.fds) if order.fds else None,
        payment=payment_out, created_at=aware(order.created_at))
