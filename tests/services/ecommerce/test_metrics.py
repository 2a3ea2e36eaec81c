"""After one shopping session every ECOMMERCE catalog metric is on ``GET /metrics``."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.openmetrics.parser import text_string_to_metric_families

from otel_setup.catalog import ECOMMERCE

from ..conftest import Backend, serve
from .conftest import checkout_body, fill_cart, make_app, shopper


async def test_every_ecommerce_metric_is_exposed(backend: Backend, tmp_path: Path) -> None:
    app = make_app(backend, tmp_path, fds_fail_policy="approve")
    async with serve(app) as client:
        auth = await shopper(client)
        await client.post("/v1/auth/login", json={"email": "nobody@example.com", "password": "whatever1"})
        await client.get("/v1/products/1")
        await client.get("/v1/products/1")
        await fill_cart(client, auth, (1, 2))
        order = (await client.post("/v1/orders", json=checkout_body(), headers=auth)).json()
        await client.get(f"/v1/orders/{order['order_id']}", headers=auth)
        response = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    missing = [s.name for s in ECOMMERCE if s.name.removesuffix("_total") not in families]
    assert missing == []  # the error counter starts at 0 for the known 5xx types
    requests = families["ecommerce_http_requests"].samples
    endpoints = {s.labels["endpoint"] for s in requests}
    assert "/v1/orders/{order_id}" in endpoints and order["order_id"] not in response.text
    assert {s.labels["status"] for s in families["ecommerce_orders"].samples if s.name.endswith("_total")} \
        == {"pending", "processing"}
