"""The FDS API contract: validation, idempotency, auth, stored evaluations, feedback, reviews, stats."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import samples

from ..conftest import Backend, serve
from .conftest import make_fds, staff, txn

CARD = "4111111111111111"


@pytest.mark.parametrize("changes", [
    {"amount": 0}, {"amount": -10}, {"amount": "lots"}, {"currency": "XXX"}, {"billing_country": "KOR"},
    {"shipping_country": "K1"}, {"ip_address": "999.1.1.1"}, {"ip_address": CARD}, {"email": "not-an-email"},
    {"card_bin": "41a111"}, {"card_last4": "12345"}, {"payment_method": "cash"},
    {"transaction_id": "x" * 65}, {"transaction_id": ""}, {"user_id": "a b"}, {"created_at": "yesterday"},
])
async def test_malformed_transaction_is_422_without_echo(backend: Backend, tmp_path, changes: dict[str, Any]) -> None:
    app = make_fds(backend, tmp_path)
    async with serve(app) as client:
        response = await client.post("/v1/fds/evaluate", json=txn(**changes))
        stats = (await client.get("/v1/fds/stats", headers=staff(app))).json()
    assert response.status_code == 422
    field = next(iter(changes))
    assert response.json()["detail"][0]["loc"][:2] == ["body", field]
    assert CARD not in response.text
    assert stats["evaluations"] == 0


async def test_missing_field_and_bad_json_are_422(backend: Backend, tmp_path) -> None:
    body = txn()
    del body["ip_address"]
    async with serve(make_fds(backend, tmp_path)) as client:
        missing = await client.post("/v1/fds/evaluate", json=body)
        broken = await client.post("/v1/fds/evaluate", content=b"{not json",
                                   headers={"content-type": "application/json"})
    assert (missing.status_code, broken.status_code) == (422, 422)


async def test_reevaluation_returns_the_stored_answer_and_counts_once(backend: Backend, tmp_path) -> None:
    app = make_fds(backend, tmp_path)
    body = txn(email="x@mailinator.com")
    async with serve(app) as client:
        first = (await client.post("/v1/fds/evaluate", json=body)).json()
        # A retry, even with other values, is the same transaction: its first answer stands.
        again = (await client.post("/v1/fds/evaluate", json={**body, "email": "kim@example.com"})).json()
        stats = (await client.get("/v1/fds/stats", headers=staff(app))).json()
    assert again == first and first["decision"] == "additional_auth"
    assert stats["evaluations"] == 1
    counted = samples(app.state.telemetry, "fds_evaluations")
    assert [(s.labels, s.value) for s in counted if s.name == "fds_evaluations_total"] == [
        ({"risk_level": "medium", "decision": "additional_auth"}, 1.0)]


async def test_roles_on_staff_routes(backend: Backend, tmp_path) -> None:
    app = make_fds(backend, tmp_path)
    async with serve(app) as client:
        tid = (await client.post("/v1/fds/evaluate", json=txn())).json()["transaction_id"]
        paths = [f"/v1/fds/transactions/{tid}", "/v1/fds/reviews", "/v1/fds/stats"]
        anonymous = [(await client.get(p)).status_code for p in paths]
        shopper = [(await client.get(p, headers=staff(app, "user"))).status_code for p in paths]
        admin = [(await client.get(p, headers=staff(app, "admin"))).status_code for p in paths]
        service = [(await client.get(p, headers=staff(app, "service"))).status_code for p in paths]
        feedback = [(await client.post(f"/v1/fds/transactions/{tid}/feedback", json={"is_fraud": False},
                                       headers=h)).status_code for h in ({}, staff(app, "user"))]
    assert anonymous == [401] * 3 and shopper == [403] * 3
    assert admin == service == [200] * 3
    assert feedback == [401, 403]


async def test_stored_evaluation(backend: Backend, tmp_path) -> None:
    app = make_fds(backend, tmp_path)
    body = txn(amount=120.5, currency="USD", user_id="user-77", order_id="order-77")
    async with serve(app) as client:
        ev = (await client.post("/v1/fds/evaluate", json=body)).json()
        stored = (await client.get(f"/v1/fds/transactions/{ev['transaction_id']}", headers=staff(app))).json()
        unknown = await client.get("/v1/fds/transactions/no-such-transaction", headers=staff(app))
        too_long = await client.get("/v1/fds/transactions/" + "x" * 65, headers=staff(app))
    assert {k: stored[k] for k in ev} == ev
    assert (stored["order_id"], stored["user_id"], stored["amount"], stored["currency"]) == (
        "order-77", "user-77", 120.5, "USD")
    assert stored["is_fraud"] is None and stored["created_at"].endswith(("+00:00", "Z"))
    assert (unknown.status_code, too_long.status_code) == (404, 422)


async def _evaluated(client: Any, **changes: Any) -> str:
    response = await client.post("/v1/fds/evaluate", json=txn(**changes))
    assert response.status_code == 200
    return str(response.json()["transaction_id"])


async def test_feedback_drives_outcomes_and_quality_metrics(backend: Backend, tmp_path) -> None:
    app = make_fds(backend, tmp_path)
    headers = staff(app, "service")
    async with serve(app) as client:
        blocked = await _evaluated(client, user_id="user-blocked-demo")      # flagged
        held = await _evaluated(client, device_id="device-fraud-kit", user_id="u2")  # flagged
        approved = await _evaluated(client, user_id="u3")
        missed = await _evaluated(client, user_id="u4")

        async def label(tid: str, is_fraud: Any) -> Any:
            return await client.post(f"/v1/fds/transactions/{tid}/feedback", json={"is_fraud": is_fraud},
                                     headers=headers)

        outcomes = [(await label(t, f)).json()["outcome"]
                    for t, f in ((blocked, True), (held, False), (approved, False), (missed, True))]
        repeat = await label(blocked, True)
        conflict = await label(blocked, False)
        unknown = await label("no-such-transaction", True)
        malformed = await label(held, "maybe")
        stats = (await client.get("/v1/fds/stats", headers=headers)).json()
        scrape = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert outcomes == ["tp", "fp", "tn", "fn"]
    assert (repeat.status_code, repeat.json()["outcome"]) == (200, "tp")
    assert (conflict.status_code, unknown.status_code, malformed.status_code) == (409, 404, 422)
    assert (stats["tp"], stats["fp"], stats["tn"], stats["fn"]) == (1, 1, 1, 1)
    assert stats["precision"] == stats["recall"] == stats["f1"] == 0.5
    lines = scrape.text.splitlines()
    for metric in ("fds_true_positives_total", "fds_false_positives_total", "fds_true_negatives_total",
                   "fds_false_negatives_total"):
        assert f"{metric} 1.0" in lines  # the repeated label was not counted again
    for gauge in ("fds_precision", "fds_recall", "fds_f1_score"):
        assert f"{gauge} 0.5" in lines


async def test_quality_gauges_are_restored_at_start(backend: Backend, tmp_path) -> None:
    first = make_fds(backend, tmp_path)
    async with serve(first) as client:
        for user, is_fraud in (("user-blocked-demo", True), ("u1", True), ("u2", False)):
            tid = await _evaluated(client, user_id=user)
            await client.post(f"/v1/fds/transactions/{tid}/feedback", json={"is_fraud": is_fraud},
                              headers=staff(first))
    restarted = make_fds(backend, tmp_path)
    async with serve(restarted):
        precision = samples(restarted.state.telemetry, "fds_precision")
        recall = samples(restarted.state.telemetry, "fds_recall")
    assert [s.value for s in precision] == [1.0]  # 1 TP, no FP
    assert [s.value for s in recall] == [0.5]  # 1 TP, 1 FN


async def test_review_queue_and_stats(backend: Backend, tmp_path) -> None:
    app = make_fds(backend, tmp_path)
    headers = staff(app)
    async with serve(app) as client:
        held = [await _evaluated(client, device_id="device-emulator-farm-02", user_id=f"u{i}") for i in range(3)]
        approved = await _evaluated(client, user_id="u9")  # not for review
        stepped_up = await _evaluated(client, email="x@mailinator.com", user_id="u8")  # additional_auth: neither
        queue = (await client.get("/v1/fds/reviews", headers=headers)).json()
        await client.post(f"/v1/fds/transactions/{held[0]}/feedback", json={"is_fraud": True}, headers=headers)
        after = (await client.get("/v1/fds/reviews?limit=1", headers=headers)).json()
        bad_limit = await client.get("/v1/fds/reviews?limit=0", headers=headers)
        stats = (await client.get("/v1/fds/stats", headers=headers)).json()
        stored = [(await client.get(f"/v1/fds/transactions/{tid}", headers=headers)).json()
                  for tid in (*held, approved, stepped_up)]
    assert [item["transaction_id"] for item in queue["items"]] == held and queue["total"] == 3
    assert {item["decision"] for item in queue["items"]} == {"hold"}
    assert [item["transaction_id"] for item in after["items"]] == [held[1]] and after["total"] == 2
    assert bad_limit.status_code == 422
    assert stats["evaluations"] == 5 and stats["degraded"] == 5  # no ML service in this test
    assert stats["decisions"] == {"approve": 1, "additional_auth": 1, "hold": 3, "block": 0}
    assert stats["risk_levels"] == {"low": 1, "medium": 1, "high": 3, "blocked": 0}
    assert (stats["tp"], stats["precision"], stats["recall"]) == (1, 1.0, 1.0)
    # Over the SLA are the stored evaluations that took longer than it (none on a quiet machine).
    sla_ms = app.state.settings.sla_seconds * 1000
    assert stats["sla_violations"] == sum(ev["duration_ms"] > sla_ms for ev in stored)


async def test_quality_gauges_with_an_empty_denominator(backend: Backend, tmp_path) -> None:
    app = make_fds(backend, tmp_path)
    async with serve(app) as client:
        tid = await _evaluated(client, user_id="user-blocked-demo")
        before = samples(app.state.telemetry, "fds_precision")
        await client.post(f"/v1/fds/transactions/{tid}/feedback", json={"is_fraud": False}, headers=staff(app))
        stats = (await client.get("/v1/fds/stats", headers=staff(app))).json()
    gauges = {name: [s.value for s in samples(app.state.telemetry, name)]
              for name in ("fds_precision", "fds_recall", "fds_f1_score")}
    assert before == []  # no label yet: no quality figure at all
    # One false positive: precision 0; no fraud labelled yet, so recall has no denominator: absent,
    # not a flattering 1.0, and so is F1. The label counts say why.
    assert gauges == {"fds_precision": [0.0], "fds_recall": [], "fds_f1_score": []}
    assert labels(app, "lifetime") == labels(app, "recent") == {"tp": 0, "fp": 1, "tn": 0, "fn": 0}
    assert (stats["precision"], stats["recall"], stats["f1"]) == (0.0, None, None)  # the API can say "unknown"


def labels(app: Any, window: str) -> dict[str, float]:
    return {s.labels["outcome"]: s.value for s in samples(app.state.telemetry, "fds_quality_labels")
            if s.labels["window"] == window}


def gauge(app: Any, name: str) -> list[float]:
    return [s.value for s in samples(app.state.telemetry, name)]


async def _until(condition: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_quality_gauges_agree_across_processes_sharing_the_database(backend: Backend, tmp_path) -> None:
    # Two FDS instances on one database stand for two workers: the one that did not get the
    # feedback reports the same figures within its refresh period.
    first = make_fds(backend, tmp_path, quality_refresh_seconds=0.1)
    second = make_fds(backend, tmp_path, quality_refresh_seconds=0.1)
    async with serve(first) as client, serve(second):
        for user, is_fraud in (("user-blocked-demo", True), ("u1", True), ("u2", False)):
            tid = await _evaluated(client, user_id=user)
            await client.post(f"/v1/fds/transactions/{tid}/feedback", json={"is_fraud": is_fraud},
                              headers=staff(first))
        await _until(lambda: gauge(second, "fds_recall") == [0.5])
        figures = {app: {name: gauge(app, name) for name in ("fds_precision", "fds_recall", "fds_f1_score",
                                                             "fds_precision_windowed", "fds_recall_windowed")}
                   for app in (first, second)}
    assert figures[first] == figures[second]
    assert figures[second]["fds_precision"] == [1.0] and figures[second]["fds_recall_windowed"] == [0.5]
    assert labels(second, "lifetime") == labels(first, "lifetime") == {"tp": 1, "fp": 0, "tn": 1, "fn": 1}


async def test_windowed_quality_forgets_old_labels_and_goes_absent(backend: Backend, tmp_path) -> None:
    app = make_fds(backend, tmp_path, quality_window_seconds=1.0, quality_refresh_seconds=0.1)
    async with serve(app) as client:
        tid = await _evaluated(client, user_id="user-blocked-demo")
        await client.post(f"/v1/fds/transactions/{tid}/feedback", json={"is_fraud": False}, headers=staff(app))
        fresh = gauge(app, "fds_precision_windowed")
        await _until(lambda: gauge(app, "fds_precision_windowed") == [])
        recent, lifetime = labels(app, "recent"), gauge(app, "fds_precision")
    assert fresh == [0.0]  # the false positive, inside the window
    # An hour later (here a second) the window holds no label: no windowed figure, n = 0; the
    # lifetime figure stays.
    assert recent == {"tp": 0, "fp": 0, "tn": 0, "fn": 0} and lifetime == [0.0]
