"""The shopper's cart: add, merge, list, remove; unknown products and items are 404."""

from __future__ import annotations

from pathlib import Path

from ..conftest import Backend, serve
from .conftest import make_app, shopper


async def test_cart_add_merge_list_remove(backend: Backend, tmp_path: Path) -> None:
    async with serve(make_app(backend, tmp_path)) as client:
        auth = await shopper(client)
        price = (await client.get("/v1/products/3")).json()["price"]
        first = await client.post("/v1/cart/items", json={"product_id": 3, "quantity": 2}, headers=auth)
        merged = await client.post("/v1/cart/items", json={"product_id": 3, "quantity": 1}, headers=auth)
        other = await client.post("/v1/cart/items", json={"product_id": 10, "quantity": 1}, headers=auth)
        cart = (await client.get("/v1/cart", headers=auth)).json()
        removed = await client.delete(f"/v1/cart/items/{other.json()['item_id']}", headers=auth)
        after = (await client.get("/v1/cart", headers=auth)).json()
    assert first.status_code == 201 and first.json()["unit_price"] == price
    assert merged.json()["item_id"] == first.json()["item_id"] and merged.json()["quantity"] == 3
    assert len(cart["items"]) == 2 and cart["currency"] == "KRW"
    assert cart["total"] == 3 * price + other.json()["unit_price"]
    assert removed.status_code == 204
    assert after["total"] == 3 * price and len(after["items"]) == 1


async def test_cart_rejects_bad_quantities_and_unknown_ids(backend: Backend, tmp_path: Path) -> None:
    async with serve(make_app(backend, tmp_path)) as client:
        auth = await shopper(client)
        someone = await shopper(client)
        zero = await client.post("/v1/cart/items", json={"product_id": 1, "quantity": 0}, headers=auth)
        many = await client.post("/v1/cart/items", json={"product_id": 1, "quantity": 100}, headers=auth)
        text = await client.post("/v1/cart/items", json={"product_id": 1, "quantity": "lots"}, headers=auth)
        unknown = await client.post("/v1/cart/items", json={"product_id": 999, "quantity": 1}, headers=auth)
        mine = await client.post("/v1/cart/items", json={"product_id": 1, "quantity": 99}, headers=auth)
        over = await client.post("/v1/cart/items", json={"product_id": 1, "quantity": 1}, headers=auth)
        theirs = await client.delete(f"/v1/cart/items/{mine.json()['item_id']}", headers=someone)
        missing = await client.delete("/v1/cart/items/123456", headers=auth)
    assert [r.status_code for r in (zero, many, text)] == [422, 422, 422]
    assert unknown.status_code == 404
    assert mine.status_code == 201 and over.status_code == 409
    assert (theirs.status_code, missing.status_code) == (404, 404)
