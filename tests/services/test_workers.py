"""Two worker processes per service (``shopfds up --workers 2``) on the real PostgreSQL and Redis:
the telemetry stays exact and the shop stays correct whichever worker a request reaches.

- Prometheus's ``sum()`` of the seed counters equals what the client counted, and both FDS
  workers report;
- every exemplar on a slow bucket resolves, in the per-process trace-store files, to a trace
  holding the slow CTI engine span (the ``cti-slow`` fault, switched once, reaches both workers);
- concurrent retries of one transaction_id (fresh connections, spread over the workers by
  ``SO_REUSEPORT``) are one evaluation; of one Idempotency-Key, one order and one payment;
- failed logins are limited across workers, the active-user count is one, and a fault switched
  once reaches both workers; ``shopfds trace`` shows spans of both FDS workers;
- ``shopfds report`` without Prometheus sums the scrapes of every worker.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from otel_setup.trace_store import find_trace, iter_records
from services.common.money import demo_card
from services.common.security import service_headers
from services.common.settings import DEFAULT_JWT_SECRET
from shopfds.cli import app as cli
from shopfds.procs import prometheus, prometheus_binary
from shopfds.report import collect
from shopfds.stack import Stack, run_stack

from .conftest import PG_DSN, REDIS_URL
from .test_system import _postgres, _shopper

DIRECT, RETRIES, CHECKOUTS, SAME_KEY, BROWSERS = 40, 8, 4, 6, 4
SLOW_SECONDS = 0.1  # the SLA: buckets above it are "slow"
FAULT_MS = 150


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str, str]]:
    if prometheus_binary() is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("prometheus not installed")
    workdir: Path = tmp_path_factory.mktemp("workers")
    database, prefix = f"shopfds_wk_{uuid.uuid4().hex[:10]}", f"shopfds-wk:{uuid.uuid4().hex[:8]}:"
    _postgres(f'CREATE DATABASE "{database}"')
    dsn = PG_DSN.rsplit("/", 1)[0] + f"/{database}"
    env = {"OTEL_BSP_SCHEDULE_DELAY": "200", "SHOPFDS_PAYMENT_FAILURE_RATE": "0", "DATABASE_URL": dsn,
           "REDIS_URL": REDIS_URL, "SHOPFDS_CACHE_PREFIX": prefix, "SHOPFDS_DEFAULT_SAMPLES": "2000",
           "SHOPFDS_CTI_SLOW_FAULT_SHARE": "0.5", "SHOPFDS_FDS_TIMEOUT": "2",
           "SHOPFDS_ACTIVE_USER_REFRESH_SECONDS": "0.5"}
    try:
        with run_stack(workdir, env=env, workers=2) as stack, \
                prometheus(list(stack.metrics.values()), workdir / "prom", interval="1s") as prom:
            yield stack, prom, dsn
    finally:
        _postgres(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        _forget(prefix)


def _forget(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def _txn(transaction_id: str | None = None) -> dict[str, Any]:
    return {"transaction_id": transaction_id or f"t-{uuid.uuid4().hex[:16]}", "order_id": f"o-{uuid.uuid4().hex[:8]}",
            "user_id": "user-1", "amount": 45_000, "currency": "KRW", "payment_method": "card",
            "card_bin": "411111", "card_last4": "1111", "ip_address": "10.1.2.3", "device_id": "device-1",
            "email": "kim@example.com", "billing_country": "KR", "shipping_country": "KR"}


def _parallel(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Each call on a connection of its own: the kernel spreads them over the workers."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda call: call(), calls))


def _buy(shop_url: str, headers: dict[str, str], key: str) -> Callable[[], httpx.Response]:
    body = {"payment": {"method": "card", "card_number": demo_card(), "expiry": "12/30", "cvv": "123"},
            "billing_country": "KR", "shipping_country": "KR"}
    return lambda: httpx.post(f"{shop_url}/v1/orders", headers={**headers, "Idempotency-Key": key},
                              json=body, timeout=15)


def _fill_cart(ecommerce: httpx.Client, headers: dict[str, str]) -> None:
    product = ecommerce.get("/v1/products").json()["items"][0]
    assert ecommerce.post("/v1/cart/items", headers=headers,
                          json={"product_id": product["product_id"], "quantity": 1}).status_code == 201


@pytest.fixture(scope="module")
def counted(shop: tuple[Stack, str, str]) -> dict[str, Any]:
    """Drive the shop; return what the client counted."""
    stack, _, dsn = shop
    urls = stack.urls
    staff = service_headers(DEFAULT_JWT_SECRET, "workers-test")
    fault = httpx.put(f"{urls['fds']}/internal/faults/cti-slow", headers=staff, json={"value": f"{FAULT_MS}ms"})
    assert fault.status_code == 200, fault.text
    time.sleep(0.6)  # both workers follow the switch within FOLLOW_SECONDS
    evaluate = f"{urls['fds']}/v1/fds/evaluate"
    # One at a time (the fault blocks its worker: a concurrent evaluation would be slow without its
    # own slow span), each on a new connection, so that both workers get some.
    direct = [httpx.post(evaluate, json=_txn(), timeout=10) for _ in range(DIRECT)]
    assert all(r.status_code == 200 for r in direct), [r.text for r in direct if r.status_code != 200]
    retried = _txn()
    retries = _parallel([lambda: httpx.post(evaluate, json=retried, timeout=10) for _ in range(RETRIES)])
    answers = {(r.json()["risk_score"], r.json()["duration_ms"]) for r in retries}
    with httpx.Client(base_url=urls["ecommerce"], timeout=15) as ecommerce:
        buyer = _shopper(ecommerce, "device-workers")
        orders = []
        for _ in range(CHECKOUTS):
            _fill_cart(ecommerce, buyer)
            orders.append(_buy(urls["ecommerce"], buyer, uuid.uuid4().hex)())
        _fill_cart(ecommerce, buyer)
        same = _parallel([_buy(urls["ecommerce"], buyer, "same-key-1")] * SAME_KEY)
        # shoppers seen once each, by whichever worker their connection reaches
        browsers = [_shopper(ecommerce, f"device-browse-{n}") for n in range(BROWSERS)]
    assert all(httpx.get(f"{urls['ecommerce']}/v1/cart", headers=h).status_code == 200 for h in browsers)
    assert all(r.status_code in (200, 201) for r in orders + same), [r.text for r in orders + same]
    httpx.delete(f"{urls['fds']}/internal/faults/cti-slow", headers=staff)
    return {"retry_answers": answers, "retried": retried["transaction_id"], "dsn": dsn,
            "same_orders": {r.json()["order_id"] for r in same}, "same_created": [r.status_code for r in same],
            "evaluations": DIRECT + 1 + CHECKOUTS + 1, "checkouts": CHECKOUTS + 1,
            "order_posts": CHECKOUTS + SAME_KEY}


def _query(prom: str, promql: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{prom}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _scalar(prom: str, promql: str) -> float:
    rows = _query(prom, promql)
    return float(rows[0]["value"][1]) if rows else 0.0


def _eventually(check: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            assert result, f"{what} not reached in {timeout}s"
            return result
        time.sleep(0.3)


def test_prometheus_sums_equal_the_client_counts(shop: tuple[Stack, str, str], counted: dict[str, Any]) -> None:
    _, prom, _ = shop
    expected = {
        "sum(fds_evaluations_total)": counted["evaluations"],
        "sum(fds_evaluation_duration_seconds_count)": counted["evaluations"],
        "sum(fds_decisions_total)": counted["evaluations"],
        "sum(fds_risk_level_distribution_total)": counted["evaluations"],
        "sum(ecommerce_fds_evaluations_total)": counted["checkouts"],
        'sum(ecommerce_orders_total{status="pending"})': counted["checkouts"],
        'sum(ecommerce_http_requests_total{endpoint="/v1/orders", method="POST"})': counted["order_posts"],
    }

    def equal() -> dict[str, float] | None:
        got = {q: _scalar(prom, q) for q in expected}
        return got if got == {q: float(v) for q, v in expected.items()} else None

    def seen() -> dict[str, float]:
        return {q: _scalar(prom, q) for q in expected}

    deadline = time.monotonic() + 20
    while equal() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert seen() == {q: float(v) for q, v in expected.items()}
    per_worker = {row["metric"]["instance"]: float(row["value"][1])
                  for row in _query(prom, "sum by (instance) (fds_evaluation_duration_seconds_count)")}
    assert len([n for n in per_worker.values() if n > 0]) == 2, per_worker


def test_report_without_prometheus_sums_the_scrapes_of_every_worker(shop: tuple[Stack, str, str],
                                                                     counted: dict[str, Any]) -> None:
    stack, _, _ = shop
    figures = collect(stack.metrics, None, "5m", probe_seconds=0)
    assert figures.source == "scrape" and figures.targets == dict.fromkeys(stack.metrics, True)
    assert figures.fds_evaluations == counted["evaluations"]
    assert sum(figures.decisions.values()) == counted["evaluations"]


def test_every_worker_reports_the_one_active_user_count(shop: tuple[Stack, str, str],
                                                         counted: dict[str, Any]) -> None:
    _, prom, _ = shop

    users = 1 + BROWSERS

    def everywhere() -> list[float] | None:
        values = [float(row["value"][1]) for row in _query(prom, "ecommerce_active_users")]
        return values if values == [users] * 2 else None

    # each worker reports the shared count, not the share of users it happened to see
    _eventually(everywhere, f"ecommerce_active_users == {users} on both workers")


def test_retries_reaching_different_workers_are_one_evaluation_one_order_one_payment(
        counted: dict[str, Any]) -> None:
    assert len(counted["retry_answers"]) == 1
    assert len(counted["same_orders"]) == 1 and counted["same_created"].count(201) == 1, counted["same_created"]
    rows = asyncio.run(_rows(counted["dsn"], counted["retried"], counted["same_orders"]))
    assert rows == (1, 1, 1), rows


async def _rows(dsn: str, transaction_id: str, orders: set[str]) -> tuple[int, int, int]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(50):  # the write-behind lands within an interval
            evaluations = await conn.fetchval("SELECT count(*) FROM fds_evaluations WHERE transaction_id = $1",
                                              transaction_id)
            if evaluations:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the evaluation of {transaction_id} was not written within 5 s")
        order_id = next(iter(orders))
        made = await conn.fetchval("SELECT count(*) FROM ecommerce_orders WHERE idempotency_key = 'same-key-1'")
        paid = await conn.fetchval("SELECT count(*) FROM ecommerce_payments WHERE order_id = $1", order_id)
    finally:
        await conn.close()
    return int(evaluations), int(made), int(paid)


def test_every_slow_exemplar_resolves_to_a_trace_with_the_slow_engine_span(
        shop: tuple[Stack, str, str], counted: dict[str, Any]) -> None:
    stack, prom, _ = shop

    def slow() -> list[dict[str, Any]]:
        data = httpx.get(f"{prom}/api/v1/query_exemplars", timeout=5, params={
            "query": "fds_evaluation_duration_seconds_bucket", "start": time.time() - 300, "end": time.time()}).json()
        return [ex for series in data["data"] or [] for ex in series["exemplars"] if float(ex["value"]) > SLOW_SECONDS]

    exemplars = _eventually(slow, "an exemplar on a slow bucket")
    for exemplar in exemplars:
        trace_id = exemplar["labels"]["trace_id"]
        spans = _eventually(lambda t=trace_id: [s for s in find_trace(stack.trace_dir, t)
                                                if s["name"] == "fds.engine.cti"], f"the CTI span of {trace_id}")
        assert max(s["duration_ms"] for s in spans) >= 0.9 * FAULT_MS, (exemplar, spans)


def test_shopfds_trace_shows_spans_of_both_fds_workers(shop: tuple[Stack, str, str], counted: dict[str, Any]) -> None:
    stack, _, _ = shop
    by_worker: dict[str, str] = {}
    for record in iter_records(stack.trace_dir):  # a slow CTI span: the fault, switched once, reached both
        if record["name"] == "fds.engine.cti" and record["duration_ms"] >= 0.9 * FAULT_MS:
            by_worker.setdefault(record["instance"], record["trace_id"])
    assert set(by_worker) == {"fds-1", "fds-2"}, by_worker
    for worker, trace_id in by_worker.items():
        shown = CliRunner().invoke(cli, ["trace", trace_id, "--store", str(stack.trace_dir)])
        assert shown.exit_code == 0 and worker in shown.output and "fds.engine.cti" in shown.output, shown.output


def test_failed_logins_are_limited_across_workers(shop: tuple[Stack, str, str]) -> None:
    stack, _, _ = shop
    url = stack.urls["ecommerce"]
    email = f"limited-{uuid.uuid4().hex[:8]}@example.com"
    assert httpx.post(f"{url}/v1/auth/register", json={"email": email, "password": "correct horse 1",
                                                       "name": "Park"}).status_code == 201
    address = {"X-Forwarded-For": "203.0.113.7"}  # an address of its own: only this test counts on it
    wrong = [lambda: httpx.post(f"{url}/v1/auth/login", json={"email": email, "password": "wrong"},
                                headers=address, timeout=10) for _ in range(12)]
    codes = [r.status_code for r in _parallel(wrong)]
    # 10 a minute per account (SHOPFDS_LOGIN_ATTEMPTS_PER_MINUTE): per process, 2 workers would verify up to 20
    assert codes.count(401) == 10 and codes.count(429) == 2, codes


def test_report_from_prometheus_counts_what_the_client_counted(shop: tuple[Stack, str, str],
                                                               counted: dict[str, Any]) -> None:
    """With Prometheus the report's totals are ``sum(increase(...[window]))`` over every worker.
    ``increase()`` starts from a series' first sample, so what a worker had counted before its first
    scrape is not in it (the series are born inside the window): the report equals the clients'
    count less those first samples, plus Prometheus's extrapolation towards the window's edges
    (towards its start at most back to zero, that is by at most those first samples; towards its
    end a fraction of a scrape interval's worth). One worker's share alone, or an average over the
    workers, would be about half."""
    stack, prom, _ = shop
    figures = collect(stack.metrics, prom, "10m", probe_seconds=0)
    assert figures.source == "prometheus" and figures.fds_evaluations is not None

    def bounds(counter: str) -> tuple[float, float]:
        first = sum(float(row["value"][1]) for row in _query(prom, f"min_over_time({counter}[10m])"))
        return counted["evaluations"] - first - 1, counted["evaluations"] * 1.1 + 2

    low, high = bounds("fds_evaluation_duration_seconds_count")
    assert low <= figures.fds_evaluations <= high, (figures.fds_evaluations, counted["evaluations"], low)
    low, high = bounds("fds_decisions_total")
    assert low <= sum(figures.decisions.values()) <= high, (figures.decisions, counted["evaluations"], low)
