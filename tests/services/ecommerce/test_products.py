"""The seeded catalog, read through the cache, with hit/miss counters and the hit ratio."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import samples

from ..conftest import Backend, serve
from .conftest import counter, make_app


async def test_catalog_is_seeded_and_listed(backend: Backend, tmp_path: Path) -> None:
    async with serve(make_app(backend, tmp_path)) as client:
        page = (await client.get("/v1/products", params={"limit": 10})).json()
        books = (await client.get("/v1/products", params={"category": "books", "limit": 100})).json()
        rest = (await client.get("/v1/products", params={"limit": 100, "offset": 51})).json()
        one = await client.get("/v1/products/1")
    assert page["total"] == 54 and len(page["items"]) == 10
    assert books["total"] == 6 and {p["category"] for p in books["items"]} == {"books"}
    assert [p["product_id"] for p in rest["items"]] == [52, 53, 54]
    assert one.json() == page["items"][0]
    assert one.json()["currency"] == "KRW" and one.json()["price"] > 0


async def test_seed_is_deterministic_and_not_repeated(backend: Backend, tmp_path: Path) -> None:
    async with serve(make_app(backend, tmp_path)) as client:
        first = (await client.get("/v1/products", params={"limit": 100})).json()
    async with serve(make_app(backend, tmp_path)) as client:
        second = (await client.get("/v1/products", params={"limit": 100})).json()
    assert first == second and first["total"] == 54


async def test_unknown_and_malformed_ids(backend: Backend, tmp_path: Path) -> None:
    async with serve(make_app(backend, tmp_path)) as client:
        unknown = await client.get("/v1/products/999")
        huge = await client.get("/v1/products/99999999999999999999")
        text = await client.get("/v1/products/abc")
        bad_limit = await client.get("/v1/products", params={"limit": 0})
    assert unknown.status_code == 404
    assert (huge.status_code, text.status_code, bad_limit.status_code) == (422, 422, 422)


async def test_cache_hits_misses_and_ratio(backend: Backend, tmp_path: Path) -> None:
    app = make_app(backend, tmp_path)
    async with serve(app) as client:
        for _ in range(4):  # one miss then three hits
            assert (await client.get("/v1/products/7")).status_code == 200
        await client.get("/v1/products", params={"category": "toys"})  # a miss
        await client.get("/v1/products/999")  # a miss; nothing is cached for it
    ops = samples(app.state.telemetry, "ecommerce_cache_operations")
    assert counter(ops, operation="get", result="hit") == 3
    assert counter(ops, operation="get", result="miss") == 3
    assert counter(ops, operation="set", result="ok") == 2
    ratio = samples(app.state.telemetry, "ecommerce_cache_hit_ratio")
    assert [s.value for s in ratio] == [0.5]
