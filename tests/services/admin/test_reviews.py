"""Reviews end to end: real FDS and ecommerce apps in-process, admin built last.

A held order is made the way a shopper makes one (checkout from a device on the FDS's shipped
bad-device feed), then listed, resolved, and checked where it matters: the order in ecommerce,
the label in the FDS, the admin's counters on /metrics.
"""

from __future__ import annotations

from tests.conftest import samples

from ..conftest import Backend
from .helpers import bearer, counter
from .system import running_system


async def test_review_queue_resolve_and_stats(backend: Backend, tmp_path) -> None:
    async with running_system(backend, tmp_path) as (system, _):
        approved = await system.order()
        first, second = await system.held_order(), await system.held_order()
        txn = {name: order["fds"]["transaction_id"] for name, order in
               (("approved", approved), ("first", first), ("second", second))}

        queue = (await system.admin.get("/v1/admin/reviews", headers=system.admin_headers)).json()
        assert [item["transaction_id"] for item in queue["items"]] == [txn["first"], txn["second"]]
        assert queue["total"] == 2 and queue["items"][0]["order_id"] == first["order_id"]
        assert "engines" in queue["items"][0]  # the FDS evaluation passes through whole

        ok = await system.resolve(txn["first"], "approve", is_fraud=False)
        blocked = await system.resolve(txn["second"], "block", is_fraud=True)
        assert ok.json() == {"transaction_id": txn["first"], "order_id": first["order_id"],
                             "order_status": "processing", "outcome": "fp"}
        assert blocked.json()["order_status"] == "cancelled" and blocked.json()["outcome"] == "tp"
        assert (await system.shop_order(first["order_id"]))["payment"]["status"] == "succeeded"
        assert (await system.shop_order(second["order_id"]))["status"] == "cancelled"
        assert (await system.fds_transaction(txn["first"]))["is_fraud"] is False
        assert (await system.fds_transaction(txn["second"]))["is_fraud"] is True

        # A retry of a finished resolution answers the same and counts nothing twice.
        again = await system.resolve(txn["first"], "approve", is_fraud=False)
        assert (again.status_code, again.json()) == (200, ok.json())
        changed_mind = await system.resolve(txn["first"], "block", is_fraud=True)
        not_held = await system.resolve(txn["approved"], "block", is_fraud=True)
        unknown = await system.resolve("txn-that-does-not-exist", "approve", is_fraud=False)
        assert (changed_mind.status_code, not_held.status_code, unknown.status_code) == (409, 409, 404)

        stats = (await system.admin.get("/v1/admin/stats", headers=system.admin_headers)).json()
        metrics = await system.admin.get("/metrics", headers={"Accept": "application/openmetrics-text"})

    assert stats["review_queue"] == 0
    assert (stats["evaluations"], stats["tp"], stats["fp"]) == (3, 1, 1)
    assert stats["decisions"]["hold"] == 2
    app = system.admin_app
    assert counter(app, "admin_reviews_resolved", decision="approve", is_fraud="false") == 1
    assert counter(app, "admin_reviews_resolved", decision="block", is_fraud="true") == 1
    ages = [s for s in samples(app.state.telemetry, "admin_review_age_seconds") if s.name.endswith("_count")]
    assert [s.value for s in ages] == [2]
    assert [s.value for s in samples(app.state.telemetry, "admin_review_queue_size")] == [0]
    assert 'admin_reviews_resolved_total{decision="approve",is_fraud="false"} 1.0' in metrics.text
    assert 'admin_http_requests_total{endpoint="/v1/admin/reviews/{transaction_id}/resolve"' in metrics.text


async def test_a_retry_after_partial_failures_completes_the_rest(backend: Backend, tmp_path) -> None:
    async with running_system(backend, tmp_path, fds_fault=("/feedback", "before"),
                              shop_fault=("/review", "before")) as (system, (fds_fault, shop_fault)):
        order = await system.held_order()
        txn = order["fds"]["transaction_id"]

        shop_fault.failing = fds_fault.failing = True
        nothing_done = await system.resolve(txn, "approve", is_fraud=False)
        assert nothing_done.status_code == 502 and nothing_done.json()["detail"].startswith("ecommerce: POST")
        assert (await system.shop_order(order["order_id"]))["next_action"] == "review"

        shop_fault.failing = False
        half_done = await system.resolve(txn, "approve", is_fraud=False)
        assert half_done.status_code == 502 and half_done.json()["detail"].startswith("fds: POST")
        assert (await system.shop_order(order["order_id"]))["status"] == "processing"
        # Until the label lands the transaction stays in the queue: the unfinished work is visible.
        queue = (await system.admin.get("/v1/admin/reviews", headers=system.admin_headers)).json()
        assert [item["transaction_id"] for item in queue["items"]] == [txn]

        fds_fault.failing = False
        done = await system.resolve(txn, "approve", is_fraud=False)
        assert done.status_code == 200 and done.json()["outcome"] == "fp"
        assert (await system.fds_transaction(txn))["is_fraud"] is False
    assert counter(system.admin_app, "admin_reviews_resolved", decision="approve", is_fraud="false") == 1


async def test_a_lost_answer_from_ecommerce_is_not_applied_twice(backend: Backend, tmp_path) -> None:
    async with running_system(backend, tmp_path, shop_fault=("/review", "after")) as (system, (shop_fault,)):
        order = await system.held_order()
        txn = order["fds"]["transaction_id"]
        shop_fault.failing = True
        lost = await system.resolve(txn, "block", is_fraud=True)
        shop_fault.failing = False
        # Ecommerce cancelled the order but its answer was lost; the retry finds it cancelled
        # (ecommerce says 409 to a second review) and finishes with the label.
        retried = await system.resolve(txn, "block", is_fraud=True)
    assert lost.status_code == 502 and "timed out" in lost.json()["detail"]
    assert retried.json() == {"transaction_id": txn, "order_id": order["order_id"],
                              "order_status": "cancelled", "outcome": "tp"}


async def test_an_order_resolved_elsewhere_is_409_and_frees_the_decision(backend: Backend, tmp_path) -> None:
    async with running_system(backend, tmp_path) as (system, _):
        order = await system.held_order()
        txn = order["fds"]["transaction_id"]
        # Someone cancels the held order in ecommerce directly, without the admin service.
        direct = await system.shop.post(f"/v1/orders/{order['order_id']}/review", json={"decision": "block"},
                                        headers=bearer(system.shop_app, "service"))
        assert direct.json()["status"] == "cancelled"
        approve = await system.resolve(txn, "approve", is_fraud=False)
        # Nothing of the refused approval was applied, so the reviewer may record what happened.
        block = await system.resolve(txn, "block", is_fraud=True)
        label = (await system.fds_transaction(txn))["is_fraud"]
    assert approve.status_code == 409 and "resolved outside" in approve.json()["detail"]
    assert (block.status_code, block.json()["order_status"], label) == (200, "cancelled", True)
