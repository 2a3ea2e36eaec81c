"""The signed-in shopper's cart. Stock is checked at checkout, not here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.common.app import SessionDep
from services.common.openapi import error

from ...models import CartItem, Product
from ...schemas import MAX_ID, CartItemIn, CartItemOut, CartOut
from ..deps import ShopperDep

router = APIRouter(prefix="/v1/cart", tags=["cart"])


@router.post("/items", status_code=status.HTTP_201_CREATED,
             responses={404: error("product not found"), 409: error("over 99 of one product, or a concurrent change")})
async def add_item(body: CartItemIn, user: ShopperDep, session: SessionDep) -> CartItemOut:
    product = await session.get(Product, body.product_id)
    if product is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "product not found")
    item = await session.scalar(select(CartItem).where(CartItem.user_id == user.id,
                                                       CartItem.product_id == product.id))
    if item is None:
        item = CartItem(user_id=user.id, product_id=product.id, quantity=body.quantity)
        session.add(item)
    elif item.quantity + body.quantity > 99:
        raise HTTPException(status.HTTP_409_CONFLICT, "at most 99 of one product in a cart")
    else:
        item.quantity += body.quantity
    try:
        await session.commit()
    except IntegrityError as exc:  # the same product added by a concurrent request
        await session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, "cart changed concurrently; retry") from exc
    return CartItemOut(item_id=item.id, product_id=product.id, quantity=item.quantity, unit_price=product.price)


@router.get("")
async def get_cart(user: ShopperDep, session: SessionDep) -> CartOut:
    rows = (await session.execute(
        select(CartItem, Product).join(Product, CartItem.product_id == Product.id)
        .where(CartItem.user_id == user.id).order_by(CartItem.id))).all()
    items = [CartItemOut(item_id=i.id, product_id=p.id, quantity=i.quantity, unit_price=p.price) for i, p in rows]
    return CartOut(items=items, total=sum(i.quantity * i.unit_price for i in items))


@router.delete("/items/{item_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses={404: error("cart item not found")})
async def remove_item(item_id: Annotated[int, Path(ge=1, le=MAX_ID)], user: ShopperDep,
                      session: SessionDep) -> Response:
    item = await session.scalar(select(CartItem).where(CartItem.id == item_id, CartItem.user_id == user.id))
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "cart item not found")
    await session.delete(item)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
