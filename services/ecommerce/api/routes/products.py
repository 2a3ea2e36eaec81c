"""The catalog, read through the product cache."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from sqlalchemy import func, select

from services.common.app import SessionDep
from services.common.openapi import error

from ...models import Product
from ...product_cache import listing_key, product_key
from ...schemas import MAX_ID, ProductOut, ProductPage
from ..deps import ProductCacheDep

router = APIRouter(prefix="/v1/products", tags=["products"])


@router.get("")
async def list_products(session: SessionDep, cache: ProductCacheDep,
                        limit: Annotated[int, Query(ge=1, le=100)] = 20,
                        offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
                        category: Annotated[str | None, Query(min_length=1, max_length=50)] = None) -> ProductPage:
    key = listing_key(category, limit, offset)
    if (cached := await cache.get(key)) is not None:
        return ProductPage.model_validate(cached)
    query = select(Product)
    if category is not None:
        query = query.where(Product.category == category)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(query.order_by(Product.id).limit(limit).offset(offset))
    page = ProductPage(items=[_out(p) for p in rows], total=total)
    await cache.set(key, page.model_dump())
    return page


@router.get("/{product_id}", responses={404: error("product not found")})
async def get_product(product_id: Annotated[int, Path(ge=1, le=MAX_ID)], session: SessionDep,
                      cache: ProductCacheDep) -> ProductOut:
    key = product_key(product_id)
    if (cached := await cache.get(key)) is not None:
        return ProductOut.model_validate(cached)
    product = await session.get(Product, product_id)
    if product is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "product not found")
    out = _out(product)
    await cache.set(key, out.model_dump())
    return out


def _out(product: Product) -> ProductOut:
    return ProductOut(product_id=product.id, name=product.name, category=product.category,
                      price=product.price, stock=product.stock)
