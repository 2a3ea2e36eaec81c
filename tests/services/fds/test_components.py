"""The FDS's building blocks: rule book and feed validation at start, latency window, circuit
breaker, and the aggregator's score and degraded policy."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from services.fds.aggregator import EngineRun, combine
from services.fds.engines import EngineResult
from services.fds.engines.breaker import CircuitBreaker
from services.fds.engines.feeds import FeedError
from services.fds.latency import LatencyWindow
from services.fds.rulebook import RuleBookError
from services.fds.settings import PACKAGE_DIR, Settings

from ..conftest import Backend, serve
from .conftest import make_fds, rule_book


def _add_rule(rule: dict[str, Any]) -> Any:
    return lambda data: data["rules"].append(rule)


@pytest.mark.parametrize(("edit", "message"), [
    (_add_rule({"name": "odd", "when": ["shoe_size > 3"], "score": 5}), "unknown fact 'shoe_size'"),
    (_add_rule({"name": "odd", "when": ["user_id in vip_users"], "score": 5}), "unknown list 'vip_users'"),
    (_add_rule({"name": "odd", "when": ["amount_krw >= lots"], "score": 5}), "'lots' is not a number"),
    (_add_rule({"name": "odd", "when": ["amount_krw in blocked_users"], "score": 5}), "numeric fact takes"),
    (_add_rule({"name": "odd", "when": ["email > 3"], "score": 5}), "text fact takes"),
    (_add_rule({"name": "odd", "when": ["amount_krw>3"], "score": 5}), "expected '<fact> <op> <value>'"),
    (_add_rule({"name": "odd", "when": ["amount_krw > 3"], "score": 150}), "'score' must be a number 0-100"),
    (_add_rule({"name": "odd", "when": [], "score": 5}), "non-empty list of conditions"),
    (_add_rule({"name": "odd", "when": ["amount_krw > 3"], "score": 5, "sccore": 1}), "unknown keys"),
    (_add_rule({"name": "Odd Name", "when": ["amount_krw > 3"], "score": 5}), "snake_case"),
    (_add_rule({"name": "velocity_user", "when": ["amount_krw > 3"], "score": 5}), "duplicate name"),
    (lambda data: data.pop("rules"), "'rules' must be a non-empty list"),
])
async def test_bad_rule_book_stops_the_start(backend: Backend, tmp_path, edit: Any, message: str) -> None:
    app = make_fds(backend, tmp_path, rules_path=rule_book(tmp_path, edit))
    with pytest.raises(RuleBookError, match=r"rule book .*rules-") as info:
        async with serve(app):
            pass
    assert message in str(info.value)


async def test_unreadable_rule_book_stops_the_start(backend: Backend, tmp_path) -> None:
    (tmp_path / "broken.yaml").write_text("rules: [unclosed")
    for path in (tmp_path / "broken.yaml", tmp_path / "missing.yaml"):
        with pytest.raises(RuleBookError, match="cannot read"):
            async with serve(make_fds(backend, tmp_path, rules_path=str(path))):
                pass


async def test_bad_feed_entry_stops_the_start(backend: Backend, tmp_path) -> None:
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    for source in PACKAGE_DIR.joinpath("feeds").iterdir():
        feeds.joinpath(source.name).write_text(source.read_text())
    feeds.joinpath("bad_ips.txt").write_text("# ok\n10.0.0.0/8\n10.0.0.300  # typo\n")
    with pytest.raises(FeedError, match=r"bad_ips.txt:3: '10.0.0.300' is not an IP address"):
        async with serve(make_fds(backend, tmp_path, cti_feeds_dir=str(feeds))):
            pass


def test_latency_window_quantiles_are_close_and_slide() -> None:
    rng = random.Random(3)
    window = LatencyWindow(500)
    values = [rng.lognormvariate(math.log(0.02), 0.8) for _ in range(500)]
    for v in values:
        window.add(v)
    ordered = sorted(values)
    for q, got in window.quantiles().items():
        exact = ordered[math.ceil(q * len(ordered)) - 1]
        assert abs(got - exact) / exact < 0.03, (q, got, exact)
    for _ in range(500):  # the old samples leave the window
        window.add(0.2)
    assert len(window) == 500
    assert all(abs(v - 0.2) / 0.2 < 0.03 for v in window.quantiles().values())


def test_circuit_breaker_half_open_probe() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=3, reset_seconds=10, clock=lambda: now[0])
    breaker.record_failure()
    breaker.record_success()  # not consecutive: the count starts again
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert (breaker.state, breaker.allow()) == ("open", False)
    now[0] = 10.0
    assert breaker.allow() is True  # the one probe
    assert breaker.allow() is False  # others wait for its result
    breaker.record_failure()  # the probe failed: open again for a full period
    now[0] = 15.0
    assert (breaker.state, breaker.allow()) == ("open", False)
    now[0] = 20.0
    assert breaker.allow() is True
    breaker.record_success()
    assert (breaker.state, breaker.allow()) == ("closed", True)


def _run(name: str, score: float | None, status: str = "ok", **result: Any) -> EngineRun:
    if score is None:
        return EngineRun(name, status, 1.0)
    return EngineRun(name, status, 1.0, EngineResult(score, **result))


def test_scores_combine_as_weighted_noisy_or() -> None:
    s = Settings(rule_weight=1.0, ml_weight=0.5, cti_weight=1.0)
    assert combine([_run("rule", 50), _run("ml", 0), _run("cti", 50)], 1_000, s).score == 75.0
    alone = combine([_run("rule", 0), _run("ml", 0), _run("cti", 90)], 1_000, s)
    assert (alone.score, alone.level, alone.decision) == (90.0, "blocked", "block")
    assert alone.blocked_reason == "risk_score"
    ml = combine([_run("rule", 0), _run("ml", 75), _run("cti", 0)], 1_000, s)
    assert ml.score == 50.0  # 1 - 0.25 ** 0.5


def test_policy_when_engines_are_missing() -> None:
    s = Settings(rule_fallback_hold_amount_krw=1_000_000)
    ml_missing = combine([_run("rule", 35, factors=["velocity_user"]), _run("ml", None, "unavailable"),
                          _run("cti", 0)], 50_000, s)
    assert (ml_missing.score, ml_missing.decision, ml_missing.degraded_reasons) == (
        35.0, "additional_auth", ["ml_unavailable"])
    no_rules = [_run("rule", None, "error"), _run("ml", 1), _run("cti", 0)]
    assert combine(no_rules, 999_999, s).decision == "additional_auth"
    assert combine(no_rules, 1_000_000, s).decision == "hold"
    stricter = combine([_run("rule", None, "timeout"), _run("ml", 0), _run("cti", 90)], 10, s)
    assert stricter.decision == "block"  # the floor never lowers what the others found
    blocked = combine([_run("rule", 100, block_reasons=("blocklist_user",)), _run("ml", 0), _run("cti", 0)], 10, s)
    assert (blocked.decision, blocked.blocked_reason) == ("block", "blocklist")
