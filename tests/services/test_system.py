"""The four services as real processes (uvicorn on 127.0.0.1) on the real PostgreSQL and Redis of
this machine, one scripted flow across them:

- every metric of SPEC.md's catalog is on the right service's ``/metrics`` with its type and labels;
- one checkout is one connected trace ecommerce -> FDS holding the three engine spans, the HTTP
  client span of the call, SQL statements and cache commands, and no card data anywhere in it.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from otel_setup import catalog
from otel_setup.trace_store import find_trace, iter_records
from services.common.money import demo_card
from services.common.security import service_headers
from services.common.settings import DEFAULT_JWT_SECRET
from shopfds.stack import Stack, run_stack

from .conftest import PG_DSN, REDIS_URL

_TYPES = {catalog.Kind.COUNTER: "counter", catalog.Kind.HISTOGRAM: "histogram",
          catalog.Kind.GAUGE: "gauge", catalog.Kind.UPDOWN: "gauge"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("stack")
    database, prefix = f"shopfds_sys_{uuid.uuid4().hex[:10]}", f"shopfds-sys:{uuid.uuid4().hex[:8]}:"
    _postgres(f'CREATE DATABASE "{database}"')
    # Short export delays so that spans reach the trace store within the test.
    env = {"OTEL_BSP_SCHEDULE_DELAY": "200", "SHOPFDS_PAYMENT_FAILURE_RATE": "0",
           "DATABASE_URL": PG_DSN.rsplit("/", 1)[0] + f"/{database}", "REDIS_URL": REDIS_URL,
           "SHOPFDS_CACHE_PREFIX": prefix}
    try:
        with run_stack(workdir, env=env) as running:
            yield running
    finally:
        _postgres(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _postgres(statement: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        try:
            conn = await asyncpg.connect(PG_DSN, timeout=3)
        except OSError as exc:
            (pytest.fail if os.environ.get("CI") else pytest.skip)(f"PostgreSQL not running: {exc}")
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def _shopper(ecommerce: httpx.Client, device: str) -> dict[str, str]:
    email = f"shopper-{uuid.uuid4().hex[:8]}@example.com"
    assert ecommerce.post("/v1/auth/register", json={"email": email, "password": "correct horse 1",
                                                     "name": "Kim"}).status_code == 201
    assert ecommerce.post("/v1/auth/login", json={"email": email, "password": "wrong password"}).status_code == 401
    token = ecommerce.post("/v1/auth/login", json={"email": email, "password": "correct horse 1"}).json()
    address = f"175.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    return {"Authorization": f"Bearer {token['access_token']}", "X-Device-Id": device, "X-Forwarded-For": address}


def _checkout(ecommerce: httpx.Client, headers: dict[str, str], card: str | None = None,
              **extra: Any) -> dict[str, Any]:
    card = card or demo_card()  # each shopper pays with their own card
    products = ecommerce.get("/v1/products").json()["items"]
    for _ in range(2):  # the second read is a cache hit
        assert ecommerce.get(f"/v1/products/{products[0]['product_id']}").status_code == 200
    assert ecommerce.post("/v1/cart/items", headers=headers,
                          json={"product_id": products[0]["product_id"], "quantity": 1}).status_code == 201
    body = {"payment": {"method": "card", "card_number": card, "expiry": "12/30", "cvv": "123"},
            "billing_country": "KR", "shipping_country": "KR", **extra}
    response = ecommerce.post("/v1/orders", headers={**headers, "Idempotency-Key": uuid.uuid4().hex}, json=body)
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    return order


def _flow(stack: Stack) -> dict[str, Any]:
    urls = stack.urls
    staff = service_headers(DEFAULT_JWT_SECRET, "system-test")
    with httpx.Client(base_url=urls["ecommerce"], timeout=10) as ecommerce, \
            httpx.Client(timeout=30) as http:
        shopper = _shopper(ecommerce, "device-1")
        card = demo_card()
        order = _checkout(ecommerce, shopper, card=card)
        if order["next_action"] == "verify":  # a first purchase may ask for additional authentication
            verified = ecommerce.post(f"/v1/orders/{order['order_id']}/verify", headers=shopper,
                                      json={"code": "000000"})
            assert verified.status_code == 200, verified.text
            order = {**verified.json(), "fds": order["fds"]}
        assert order["status"] == "processing", order
        for status in ("shipped", "delivered"):
            assert http.post(f"{urls['ecommerce']}/v1/orders/{order['order_id']}/status",
                             headers=staff, json={"status": status}).status_code == 200
        # Devices on the threat-intel feed are held for review; a card-testing burst is blocked.
        held = [_checkout(ecommerce, _shopper(ecommerce, device))
                for device in ("device-emulator-farm-01", "device-emulator-farm-02", "device-fraud-kit")]
        assert sum(o["next_action"] == "review" for o in held) >= 2, [o["fds"] for o in held]
        risky = _shopper(ecommerce, "device-burst")
        for _ in range(6):
            _checkout(ecommerce, risky, card="5555555555554444", shipping_country="NG")
        admin_token = http.post(f"{urls['admin']}/v1/admin/auth/login",
                                json={"username": "admin", "password": "admin"}).json()["access_token"]
        admin = {"Authorization": f"Bearer {admin_token}"}
        reviews = http.get(f"{urls['admin']}/v1/admin/reviews", headers=admin).json()["items"]
        assert len(reviews) >= 2
        for decision, review in zip(("block", "approve"), reviews, strict=False):
            resolved = http.post(f"{urls['admin']}/v1/admin/reviews/{review['transaction_id']}/resolve",
                                 headers=admin, json={"decision": decision, "is_fraud": decision == "block"})
            assert resolved.status_code == 200, resolved.text
        txn = order["fds"]["transaction_id"]
        assert http.post(f"{urls['fds']}/v1/fds/transactions/{txn}/feedback", headers=staff,
                         json={"is_fraud": False}).status_code == 200
        assert http.get(f"{urls['admin']}/v1/admin/stats", headers=admin).status_code == 200
        # ML: train a small model, deploy it, score.
        model = http.post(f"{urls['ml']}/v1/ml/train", headers=staff, json={"samples": 2000}).json()
        assert http.post(f"{urls['ml']}/v1/ml/models/{model['version']}/deploy", headers=staff).status_code == 200
        features = {name: 0.0 for name in _features()}
        assert http.post(f"{urls['ml']}/v1/ml/score", json={"features": features}).status_code == 200
    return {**order, "card": card}


def _features() -> tuple[str, ...]:
    from services.ml.features import FEATURES

    return FEATURES


def _families(url: str) -> dict[str, Any]:
    body = httpx.get(f"{url}/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=10).text
    return {f.name: f for f in text_string_to_metric_families(body)}


@pytest.fixture(scope="module")
def flowed(stack: Stack) -> dict[str, Any]:
    return _flow(stack)


@pytest.mark.parametrize("service", ["ecommerce", "fds", "ml", "admin"])
def test_every_catalog_metric_is_on_its_service_with_type_and_labels(stack: Stack, flowed: dict[str, Any],
                                                                     service: str) -> None:
    families = _families(stack.urls[service])
    problems = []
    for spec in catalog.BY_SERVICE[service]:
        # OpenMetrics names counters without "_total" in the family name.
        family = families.get(spec.name.removesuffix("_total") if spec.kind is catalog.Kind.COUNTER else spec.name)
        if family is None:
            problems.append(f"{spec.name}: absent")
            continue
        if family.type != _TYPES[spec.kind]:
            problems.append(f"{spec.name}: type {family.type}, expected {_TYPES[spec.kind]}")
        label_sets = {frozenset(k for k in s.labels if k not in ("le", "otel_scope_name")) for s in family.samples}
        if not any(set(spec.labels) <= labels for labels in label_sets):
            problems.append(f"{spec.name}: labels {sorted(map(sorted, label_sets))}, expected {spec.labels}")
    assert not problems, "\n".join(problems)


def test_one_checkout_is_one_trace_across_ecommerce_and_fds_with_three_engine_spans(
        stack: Stack, flowed: dict[str, Any]) -> None:
    txn = flowed["fds"]["transaction_id"]
    deadline = time.monotonic() + 15
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        roots = [r for r in iter_records(stack.trace_dir)
                 if r["attributes"].get(catalog.Attr.FDS_TRANSACTION_ID) == txn]
        if roots:
            spans = find_trace(stack.trace_dir, roots[0]["trace_id"])
            names = {s["name"] for s in spans}
            if {"fds.engine.rule", "fds.engine.ml", "fds.engine.cti"} <= names and \
                    any(s["name"] == "POST /v1/orders" for s in spans):
                break
        time.sleep(0.3)
    else:
        raise AssertionError(f"no whole checkout trace with the three engine spans in 15 s: {spans}")
    by_id = {s["span_id"]: s for s in spans}
    services = {s["service"] for s in spans}
    assert {"ecommerce", "fds"} <= services, services
    checkout = next(s for s in spans if s["name"] == "POST /v1/orders")
    assert checkout["parent_span_id"] is None
    engines = [s for s in spans if s["name"].startswith(catalog.ENGINE_SPAN_PREFIX)]
    assert sorted(s["attributes"][catalog.Attr.FDS_ENGINE] for s in engines) == ["cti", "ml", "rule"]
    for engine in engines:  # each engine span hangs off the checkout through the FDS request
        node = engine
        while node["parent_span_id"] is not None:
            node = by_id[node["parent_span_id"]]
        assert node is checkout
    # The call to the FDS is a client span whose child is the FDS's server span (traceparent).
    fds_server = next(s for s in spans if s["name"] == "POST /v1/fds/evaluate")
    client = by_id[fds_server["parent_span_id"]]
    assert client["kind"] == "CLIENT" and client["service"] == "ecommerce"
    # SQL statements (PostgreSQL) and cache commands (Redis) of both services, in the same trace.
    statements = [s["attributes"]["db.query.text"] for s in spans if "db.query.text" in s["attributes"]]
    assert any(st.startswith("INSERT INTO ecommerce_orders") for st in statements), statements
    # The FDS writes its evaluations behind, in batches: their INSERT is a trace of its own.
    assert not any(st.startswith("INSERT INTO fds_evaluations") for st in statements), statements
    batches = [r for r in iter_records(stack.trace_dir) if r["service"] == "fds"
               and str(r["attributes"].get("db.query.text", "")).startswith("INSERT INTO fds_evaluations")]
    assert batches and all(r["parent_span_id"] is None for r in batches)
    redis = [s for s in spans if s["attributes"].get("db.system.name") == "redis"]
    assert {s["service"] for s in redis} == {"ecommerce", "fds"}  # product cache invalidation; aggregates
    assert any("ZADD" in s["attributes"]["db.query.text"] for s in redis if s["service"] == "fds")
    assert all(set(s["attributes"]["db.query.text"].split()) <= set(s["name"].split()) | {"?"} for s in redis)
    # No parameter values: statements carry placeholders; no card data anywhere in the trace.
    assert all("$1" in st or "%(" in st or "?" in st for st in statements if st.startswith(("INSERT", "UPDATE")))
    blob = json.dumps(spans)
    assert flowed["card"] not in blob and flowed["card"][6:12] + flowed["card"][-4:] not in blob


@pytest.mark.parametrize("service", ["ecommerce", "fds", "ml", "admin"])
def test_promtool_finds_no_problem_in_metrics(stack: Stack, flowed: dict[str, Any], service: str) -> None:
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("promtool not installed")
    body = httpx.get(f"{stack.urls[service]}/metrics", timeout=10).text  # the Prometheus text format
    checked = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True,
                             timeout=30, check=False)
    # The seed names one gauge fds_evaluation_latency_summary and gives it a quantile label
    # (SPEC.md: "summary-style quantiles"); promtool's lint objects to both, and only to that.
    problems = [line for line in (checked.stdout + checked.stderr).splitlines()
                if line.strip() and not line.startswith("fds_evaluation_latency_summary ")]
    assert not problems, problems
