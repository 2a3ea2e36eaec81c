"""The signed-in shopper's cart. Stock is checked at checkout, not here."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response, status
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.app import SessionDep
from services.common.openapi import error

from ...models import CartItem, Product
from ...schemas import MAX_ID, CartItemIn, CartItemOut, CartOut
from ..deps import ShopperDep

router = APIRouter(prefix="/v1/cart", tags=["cart"])


@router.post("/items", status_code=status.HTTP_201_CREATED,
             responses={404: error("product not found"), 409: error("over 99 of one product in a cart")})
async def add_item(body: CartItemIn, user: ShopperDep, session: SessionDep) -> CartItemOut:
    """One upsert (``ON CONFLICT ... DO UPDATE ... RETURNING``): a concurrent add of the same
    product merges instead of clashing, and the 99 cap holds in the statement itself."""
    price = await session.scalar(select(Product.price).where(Product.id == body.product_id))
    if price is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "product not found")
    upsert = _insert_for(session)(CartItem.__table__).values(
        user_id=user.id, product_id=body.product_id, quantity=body.quantity)
    merged = CartItem.__table__.c.quantity + upsert.excluded.quantity
    row = (await session.execute(upsert.on_conflict_do_update(
        index_elements=["user_id", "product_id"], set_={"quantity": merged}, where=merged <= 99)
        .returning(CartItem.__table__.c.id, CartItem.__table__.c.quantity))).first()
    if row is None:  # the existing line and this one make more than 99
        await session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, "at most 99 of one product in a cart")
    await session.commit()
    return CartItemOut(item_id=row.id, product_id=body.product_id, quantity=row.quantity, unit_price=price)


def _insert_for(session: AsyncSession) -> Any:
    """The dialect's ``insert`` (PostgreSQL or SQLite), the two that have ``on_conflict_do_update``."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


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
