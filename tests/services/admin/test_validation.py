"""Malformed input is 422 and a down upstream is 502 with a detail naming it: never a 500."""

from __future__ import annotations

from ..conftest import Backend, serve
from .helpers import bearer, make_admin


async def test_malformed_requests_are_422(backend: Backend, tmp_path) -> None:
    app = make_admin(backend, tmp_path)
    headers = bearer(app, "admin")
    async with serve(app) as client:
        responses = [
            await client.post("/v1/admin/reviews/txn-1/resolve", headers=headers,
                              json={"decision": "maybe", "is_fraud": False}),
            await client.post("/v1/admin/reviews/txn-1/resolve", headers=headers, json={"decision": "block"}),
            await client.post("/v1/admin/reviews/has%20space/resolve", headers=headers,
                              json={"decision": "block", "is_fraud": True}),
            await client.post(f"/v1/admin/reviews/{'x' * 65}/resolve", headers=headers,
                              json={"decision": "block", "is_fraud": True}),
            await client.get("/v1/admin/reviews?limit=0", headers=headers),
            await client.get("/v1/admin/reviews?limit=abc", headers=headers),
            await client.post("/v1/admin/auth/login", json={"username": "", "password": "x"}),
            await client.post("/v1/admin/auth/login", content=b"{not json",
                              headers={"content-type": "application/json"}),
        ]
    assert [r.status_code for r in responses] == [422] * len(responses)


async def test_upstream_down_is_502_with_a_clear_detail(backend: Backend, tmp_path) -> None:
    app = make_admin(backend, tmp_path)
    headers = bearer(app, "admin")
    async with serve(app) as client:
        reviews = await client.get("/v1/admin/reviews", headers=headers)
        stats = await client.get("/v1/admin/stats", headers=headers)
        resolve = await client.post("/v1/admin/reviews/txn-1/resolve", headers=headers,
                                    json={"decision": "approve", "is_fraud": False})
    for response in (reviews, stats, resolve):
        assert response.status_code == 502
        assert response.json()["detail"].startswith("fds: GET /v1/fds/")
