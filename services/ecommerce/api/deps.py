"""Dependency aliases for the ecommerce routes: the signed-in shopper, the shop, the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from services.common.app import SessionDep, from_state
from services.common.security import Principal, UserDep, require_roles

from ..checkout import Shop
from ..models import User
from ..product_cache import ProductCache


async def _shopper(request: Request, principal: UserDep, session: SessionDep) -> User:
    user = await session.get(User, principal.subject)
    if user is None:  # a valid signature for a user this shop does not know (e.g. a reset database)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown user", headers={"WWW-Authenticate": "Bearer"})
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
