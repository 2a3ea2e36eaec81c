"""HTTP metrics and server spans carry the route template as the app's router knows it: every
prefix of nested routers, and for a router included twice, the prefix the request came by."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, FastAPI

from otel_setup.catalog import Attr
from tests.conftest import samples


def _app() -> FastAPI:
    items = APIRouter(prefix="/items")

    @items.get("/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    shops = APIRouter(prefix="/v1/shops/{shop_id}")
    shops.include_router(items)
    app = FastAPI()
    app.include_router(shops)
    app.include_router(items, prefix="/v2")
    return app


async def test_nested_and_twice_included_routers_give_their_full_templates(make_telemetry):
    app = _app()
    telemetry, memory = make_telemetry("ecommerce", app=app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        # "abc12345x9" looks like an id and "shop" does not: the template never depends on it.
        for path in ("/v1/shops/abc12345x9/items/3", "/v1/shops/shop/items/4", "/v2/items/5", "/v2/items/6"):
            assert (await client.get(path)).status_code == 200
        assert (await client.get("/v3/items/7")).status_code == 404

    counts = {s.labels["endpoint"]: s.value for s in samples(telemetry, "ecommerce_http_requests")
              if s.name.endswith("_total")}
    assert counts == {"/v1/shops/{shop_id}/items/{item_id}": 2, "/v2/items/{item_id}": 2, "unmatched": 1}
    telemetry.force_flush()
    routes = sorted(str(s.attributes.get(Attr.HTTP_ROUTE)) for s in memory.get_finished_spans()
                    if s.attributes and Attr.HTTP_ROUTE in s.attributes)
    assert routes == ["/v1/shops/{shop_id}/items/{item_id}"] * 2 + ["/v2/items/{item_id}"] * 2


async def test_a_route_added_after_the_first_request_is_known(make_telemetry):
    app = FastAPI()

    @app.get("/a/{n}")
    async def a(n: int) -> int:
        return n

    telemetry, _ = make_telemetry("ecommerce", app=app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        await client.get("/a/1")
        late = APIRouter(prefix="/late")

        @late.get("/{n}")
        async def b(n: int) -> int:
            return n

        app.include_router(late, prefix="/outer")
        assert (await client.get("/outer/late/2")).status_code == 200
    endpoints = {s.labels["endpoint"] for s in samples(telemetry, "ecommerce_http_requests")}
    assert endpoints == {"/a/{n}", "/outer/late/{n}"}
