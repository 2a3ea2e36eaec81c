"""Engines that are slow, failing or missing: the degraded policy, on real HTTP.

The CTI provider is a real HTTP server on 127.0.0.1 (``conftest.provider``) that can be slow
or fail; no project code is replaced.
"""

from __future__ import annotations

from typing import Any

from ..conftest import Backend, serve
from .conftest import make_fds, provider, rule_book, txn


async def _evaluate(client: Any, **changes: Any) -> dict[str, Any]:
    response = await client.post("/v1/fds/evaluate", json=txn(**changes))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_slow_cti_provider_is_cut_by_the_engine_budget(backend: Backend, tmp_path) -> None:
    # The provider answers in 300 ms; its own timeout is longer, so only the engine budget can cut
    # it: a "timeout" status is that cut (a provider answer or its own timeout leaves "ok").
    budget_ms = 50
    async with provider(delay=0.3) as slow:
        app = make_fds(backend, tmp_path, cti_provider_url=slow.url, cti_provider_timeout_seconds=1.0,
                       cti_timeout_seconds=budget_ms / 1000)
        async with serve(app) as client:
            ev = await _evaluate(client, amount=2_500_000)
    assert ev["engines"]["cti"]["status"] == "timeout"
    assert ev["degraded"] is True and ev["degraded_reason"] == "ml_unavailable, cti_timeout"
    # The engine waited its whole budget, no less (a lower bound: load only lengthens it).
    assert ev["engines"]["cti"]["duration_ms"] >= budget_ms - 0.01
    # Rules and the rest of the policy still decide.
    assert ev["risk_factors"] == ["first_purchase_high_amount"] and ev["decision"] == "hold"
    assert slow.hits == ["10.1.2.3"]


async def test_provider_timeout_keeps_the_feed_result(backend: Backend, tmp_path) -> None:
    # Provider timeout well below the engine budget: the feeds still count.
    async with provider(delay=0.3) as slow:
        app = make_fds(backend, tmp_path, cti_provider_url=slow.url, cti_provider_timeout_seconds=0.03,
                       cti_timeout_seconds=0.5)
        async with serve(app) as client:
            ev = await _evaluate(client, email="someone@yopmail.com")
    assert ev["engines"]["cti"]["status"] == "ok"
    assert ev["risk_factors"] == ["cti_disposable_email"]
    assert ev["degraded_reason"] == "ml_unavailable, cti_provider_timeout"


async def test_provider_score_is_a_factor_and_is_cached(backend: Backend, tmp_path) -> None:
    async with provider(scores={"10.7.7.7": 80.0, "10.7.7.8": 20.0}) as cti:
        app = make_fds(backend, tmp_path, cti_provider_url=cti.url)
        async with serve(app) as client:
            risky = [await _evaluate(client, ip_address="10.7.7.7", user_id=f"u{i}") for i in range(3)]
            mild = await _evaluate(client, ip_address="10.7.7.8")
    assert cti.hits == ["10.7.7.7", "10.7.7.8"]  # one lookup per IP: the rest came from the cache
    for ev in risky:
        assert ev["risk_factors"] == ["cti_ip_reputation"]
        assert ev["engines"]["cti"]["score"] == 80.0 and ev["decision"] == "hold"
        assert ev["degraded_reason"] == "ml_unavailable"
    assert mild["risk_factors"] == [] and mild["engines"]["cti"]["score"] == 20.0
    assert mild["decision"] == "approve"


async def test_circuit_breaker_opens_after_consecutive_failures(backend: Backend, tmp_path) -> None:
    async with provider(status=500) as broken:
        app = make_fds(backend, tmp_path, cti_provider_url=broken.url, cti_breaker_failures=2,
                       cti_breaker_reset_seconds=600)
        async with serve(app) as client:
            evs = [await _evaluate(client, ip_address=f"10.8.0.{i}", user_id=f"u{i}") for i in range(5)]
            state = app.state.ip_reputation.breaker.state
    assert len(broken.hits) == 2  # then the provider is left alone
    assert state == "open"
    reasons = [ev["degraded_reason"] for ev in evs]
    assert reasons == ["ml_unavailable, cti_provider_error"] * 2 + ["ml_unavailable, cti_provider_open"] * 3
    assert {ev["engines"]["cti"]["status"] for ev in evs} == {"ok"}
    assert {ev["decision"] for ev in evs} == {"approve"}


async def test_rule_engine_missing_never_approves(backend: Backend, tmp_path) -> None:
    # A rule book far too large for a 0.2 ms budget: the rule engine times out every time.
    def grow(data: dict[str, Any]) -> None:
        data["rules"] += [{"name": f"filler_{i}", "when": ["amount_krw < 0"], "score": 1} for i in range(5_000)]

    app = make_fds(backend, tmp_path, rules_path=rule_book(tmp_path, grow), rule_timeout_seconds=0.0002)
    async with serve(app) as client:
        small = await _evaluate(client, amount=45_000)
        large = await _evaluate(client, amount=1_500_000)
    for ev in (small, large):
        assert ev["engines"]["rule"]["status"] == "timeout"
        assert ev["degraded_reason"] == "rule_timeout, ml_unavailable"
        assert ev["risk_factors"] == []
    assert (small["decision"], small["risk_level"]) == ("additional_auth", "medium")
    assert (large["decision"], large["risk_level"]) == ("hold", "high")
