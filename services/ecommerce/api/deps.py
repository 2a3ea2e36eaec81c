"""Dependency aliases for the ecommerce routes: the signed-in shopper, the shop, the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy import select

from services.common.app import SessionDep, from_state
from services.common.security import Principal, UserDep, require_roles

from ..checkout import Shop
from ..models import User
from ..product_cache import ProductCache


async def _shopper(request: Request, principal: UserDep, session: SessionDep) -> User:
    """The shopper's row, read as plain columns (the routes only read it): no identity map, no
    object to expire on a rollback."""
    row = (await session.execute(select(User.id, User.email, User.name)
                                 .where(User.id == principal.subject))).first()
    if row is None:  # a valid signature for a user this shop does not know (e.g. a reset database)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown user", headers={"WWW-Authenticate": "Bearer"})
    user = User(id=row.id, email=row.email, name=row.name)
    request.app.state.active_users.seen(user.id)
    return user


async def _reader(request: Request,
                  principal: Annotated[Principal, Depends(require_roles("user", "admin", "service"))]) -> Principal:
    if principal.role == "user":
        request.app.state.active_users.seen(principal.subject)
    return principal


ShopperDep = Annotated[User, Depends(_shopper)]
ReaderDep = Annotated[Principal, Depends(_reader)]
ShopDep = Annotated[Shop, Depends(from_state("shop"))]
ProductCacheDep = Annotated[ProductCache, Depends(from_state("product_cache"))]
