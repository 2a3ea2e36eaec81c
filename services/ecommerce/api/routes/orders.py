"""Checkout and the order lifecycle (see ``checkout`` for the flow)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response, status

from services.common.app import SessionDep
from services.common.client_ip import client_ip
from services.common.openapi import error
from services.common.security import Principal, StaffDep

from ... import orders
from ...schemas import DEVICE_ID, CheckoutIn, OrderOut, ReviewIn, StatusIn, VerifyIn
from ..deps import ReaderDep, ShopDep, ShopperDep

router = APIRouter(prefix="/v1/orders", tags=["orders"])
OrderId = Annotated[str, Path(min_length=1, max_length=64)]
DeviceHeader = Annotated[str | None, Header(min_length=1, max_length=128, pattern=DEVICE_ID)]
NOT_FOUND = error("order not found (or not this shopper's)")
CONFLICT = error("the order is not in a state that allows this")


@router.post("", status_code=status.HTTP_201_CREATED, responses={
    200: {"model": OrderOut, "description": "a retry: the same order"},
    409: error("the cart is empty, or a product is out of stock")})
async def checkout(body: CheckoutIn, request: Request, response: Response, user: ShopperDep,
                   session: SessionDep, shop: ShopDep,
                   idempotency_key: Annotated[str | None, Header(min_length=1, max_length=64)] = None,
                   x_device_id: DeviceHeader = None) -> OrderOut:
    if body.device_id is None and x_device_id is not None:
        body = body.model_copy(update={"device_id": x_device_id})
    order, created = await shop.checkout(session, user, idempotency_key, body, client_ip(request))
    if not created:
        response.status_code = status.HTTP_200_OK
    return orders.to_out(order)


@router.get("/{order_id}", responses={404: NOT_FOUND})
async def get_order(order_id: OrderId, who: ReaderDep, session: SessionDep) -> OrderOut:
    return orders.to_out(await orders.load(session, order_id, who))


@router.post("/{order_id}/verify", responses={400: error("wrong verification code"), 404: NOT_FOUND,
                                                409: CONFLICT})
async def verify(order_id: OrderId, body: VerifyIn, user: ShopperDep, session: SessionDep,
                 shop: ShopDep) -> OrderOut:
    order = await orders.load(session, order_id, Principal(user.id, "user"))
    return orders.to_out(await shop.verify(session, order, body.code))


@router.post("/{order_id}/review", responses={404: NOT_FOUND, 409: CONFLICT})
async def review(order_id: OrderId, body: ReviewIn, _staff: StaffDep, session: SessionDep,
                 shop: ShopDep) -> OrderOut:
    order = await orders.load(session, order_id)
    return orders.to_out(await shop.review(session, order, body.decision))


@router.post("/{order_id}/status", responses={404: NOT_FOUND, 409: CONFLICT})
async def set_status(order_id: OrderId, body: StatusIn, _staff: StaffDep, session: SessionDep,
                     shop: ShopDep) -> OrderOut:
    order = await orders.load(session, order_id)
    return orders.to_out(await shop.set_status(session, order, body.status))
