"""Malformed requests to every service are clear 4xx JSON errors that do not echo the input.

For each service's main write route (ecommerce: add to cart; FDS: evaluate; ML: score; admin:
resolve a review) and one list route's ``limit``:

- a body over ``max_body_bytes``, announced by Content-Length or streamed without it -> 413;
- text/plain, a form or octet-stream instead of JSON -> 422 saying what Content-Type to use;
- bytes that are not UTF-8 -> 400; deeply nested JSON -> 400 (too deep to parse) or 422;
- numbers JSON allows but no field takes (1e309, which parses as infinity, an integer literal of
  400 digits, NaN, Infinity), negative, zero and over-the-limit values -> 422 at that field;
- a NUL character in text that reaches PostgreSQL -> 422 (it was a 503 "database unavailable").

Every answer is JSON with a ``detail``, and neither the rejected value nor the rest of the body
(a card number rides along in each) is echoed. Cases that the service tests already pin (a
feature of 1e300 or NaN for the ML, zero quantities, a negative FDS amount, a 413 by
Content-Length on a small limit) are not repeated.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from otel_setup.settings import TelemetrySettings
from services.admin.app import create_app as create_admin
from services.admin.settings import Settings as AdminSettings
from services.common.inprocess import serve
from services.common.money import MAX_AMOUNT
from services.ecommerce.app import create_app as create_ecommerce
from services.ecommerce.settings import Settings as EcommerceSettings
from services.fds.app import create_app as create_fds
from services.fds.settings import Settings as FdsSettings
from services.ml.app import create_app as create_ml
from services.ml.features import FEATURES
from services.ml.settings import Settings as MlSettings
from tests.reliability.callers import caller_headers
from tests.services.conftest import Backend, backend  # noqa: F401 - the fixture, used by name

DEAD = "http://127.0.0.1:1"
CARD = "4111111111111111"  # rides along in every body: it must never come back
BIG = "1" + "0" * 400  # an integer literal no float or 64-bit integer holds
JSON = {"content-type": "application/json"}


@dataclass
class Target:
    """A service's write route, a valid body for it and the numeric field to break."""

    build: Callable[[Path], FastAPI]
    path: str
    body: Callable[[], dict[str, Any]]
    field: tuple[str, ...]  # where the number sits in the body
    numbers: tuple[str, ...]  # JSON number literals that field must refuse
    listing: str  # a GET route with a ``limit`` query parameter
    role: str  # who calls it


def _telemetry(tmp_path: Path) -> TelemetrySettings:
    return TelemetrySettings(trace_store_dir=str(tmp_path / "traces"))


def _txn() -> dict[str, Any]:
    return {"transaction_id": f"t-{uuid.uuid4().hex[:12]}", "order_id": "o-1", "user_id": "u-1", "amount": 45_000,
            "currency": "KRW", "payment_method": "card", "card_bin": "411111", "card_last4": "1111",
            "ip_address": "10.1.2.3", "email": "kim@example.com", "billing_country": "KR", "shipping_country": "KR",
            "note": CARD}


UNBOUNDED = ("1e309", "-1e309", BIG, f"-{BIG}", "Infinity", "-Infinity", "NaN")
TARGETS = {
    "ecommerce": Target(
        lambda p: create_ecommerce(EcommerceSettings(data_dir=str(p), fds_url=DEAD), telemetry_settings=_telemetry(p)),
        "/v1/cart/items", lambda: {"product_id": 1, "quantity": 1, "note": CARD}, ("quantity",),
        (*UNBOUNDED, "-1", "100", "1.5"), "/v1/products", "user"),
    "fds": Target(
        lambda p: create_fds(FdsSettings(data_dir=str(p), ml_url=DEAD), telemetry_settings=_telemetry(p)),
        "/v1/fds/evaluate", _txn, ("amount",), (*UNBOUNDED, "-0", "1e-400", repr(MAX_AMOUNT * 10)),
        "/v1/fds/reviews", "admin"),
    "ml": Target(
        lambda p: create_ml(MlSettings(data_dir=str(p), default_samples=1_000), telemetry_settings=_telemetry(p)),
        "/v1/ml/score", lambda: {"features": dict.fromkeys(FEATURES, 0.0)}, ("features", FEATURES[0]),
        ("1e309", "-1e309", BIG, f"-{BIG}", "Infinity"), "/v1/ml/models", "service"),
    "admin": Target(
        lambda p: create_admin(AdminSettings(data_dir=str(p), fds_url=DEAD, ecommerce_url=DEAD),
                               telemetry_settings=_telemetry(p)),
        "/v1/admin/reviews/txn-1/resolve", lambda: {"decision": "block", "is_fraud": True, "note": CARD}, ("is_fraud",),
        ("1e309", BIG, "NaN", "2"), "/v1/admin/reviews", "admin"),
}


def _with(body: dict[str, Any], field: tuple[str, ...], literal: str) -> bytes:
    """``body`` as JSON text with ``literal`` (any JSON text) at ``field``."""
    marker = f"__{uuid.uuid4().hex}__"
    inner = body
    for key in field[:-1]:
        inner = inner[key]
    inner[field[-1]] = marker
    return json.dumps(body).replace(f'"{marker}"', literal).encode()


async def _stream(size: int) -> AsyncIterator[bytes]:
    """A body sent in chunks without Content-Length."""
    yield b'{"note": "'
    for _ in range(size // 65_536 + 1):
        yield b"x" * 65_536
    yield b'"}'


def _problems(name: str, response: httpx.Response, status: int, *echo: str) -> list[str]:
    """What is wrong with an answer that should be ``status`` with a JSON detail and no echo."""
    problems = []
    if response.status_code != status:
        problems.append(f"{name}: {response.status_code}, expected {status}: {response.text[:200]}")
    if not response.headers.get("content-type", "").startswith("application/json") \
            or "detail" not in response.json():
        problems.append(f"{name}: not a JSON error with a detail: {response.text[:200]}")
    for value in (CARD, *echo):
        if value in response.text:
            problems.append(f"{name}: echoes {value[:20]!r}")
    return problems


@pytest.mark.parametrize("service", list(TARGETS))
async def test_malformed_requests_are_clear_4xx_without_echo(tmp_path: Path, service: str) -> None:
    target = TARGETS[service]
    app = target.build(tmp_path)
    limit = app.state.settings.max_body_bytes
    problems: list[str] = []
    async with serve(app) as client:
        auth = await caller_headers(client, app, target.role)

        async def post(content: Any, **headers: str) -> httpx.Response:
            return await client.post(target.path, content=content, headers={**auth, **headers})

        valid = _with(target.body(), target.field, "1")
        # The valid body passes validation (the admin's upstream is down: 502), so each 4xx below
        # comes from what was broken.
        assert (await post(valid, **JSON)).status_code in (200, 201, 502)
        problems += _problems("over the limit", await post(b"x" * (limit + 1), **JSON), 413)
        problems += _problems("streamed over the limit", await post(_stream(limit), **JSON), 413)
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/octet-stream"):
            response = await post(valid, **{"content-type": content_type})
            problems += _problems(content_type, response, 422)
            if response.status_code == 422 and "Content-Type: application/json" not in response.text:
                problems.append(f"{content_type}: the error does not say what to send: {response.text}")
        problems += _problems("invalid UTF-8", await post(valid.replace(b"Kim", b"K\xff\xfe") + b'"\xc3', **JSON),
                              400, "\ufffd")
        problems += _problems("10,000 levels deep", await post(b"[" * 10_000 + b"]" * 10_000, **JSON), 400)
        nested = _with(target.body(), target.field, '{"a":' * 500 + "1" + "}" * 500)
        problems += _problems("500 levels deep in a field", await post(nested, **JSON), 422, '{"a":{"a"')
        for literal in target.numbers:
            response = await post(_with(target.body(), target.field, literal), **JSON)
            problems += _problems(f"{'.'.join(target.field)}={literal[:12]}", response, 422, literal)
            if response.status_code == 422 and \
                    not any(e["loc"][1:] == list(target.field) for e in response.json()["detail"]):
                problems.append(f"{literal[:12]}: the error does not point at the field: {response.text}")
        for literal in ("1e309", BIG, "-5", "NaN"):
            response = await client.get(target.listing, params={"limit": literal}, headers=auth)
            problems += _problems(f"limit={literal[:12]}", response, 422, literal)
    assert not problems, "\n".join(problems)


async def test_nul_character_in_text_is_422_on_both_backends(backend: Backend, tmp_path: Path) -> None:  # noqa: F811
    """PostgreSQL refuses NUL in text (SQLSTATE 22021): that is the caller's error, not an outage (503)."""
    settings = EcommerceSettings(**backend.overrides, fds_url=DEAD)
    app = create_ecommerce(settings, telemetry_settings=_telemetry(tmp_path))
    async with serve(app) as client:
        auth = await caller_headers(client, app, "user")
        register = await client.post("/v1/auth/register",
                                     json={"email": "nul@example.com", "password": "s3cret-pass", "name": "K\u0000m"})
        login = await client.post("/v1/auth/login", json={"email": "n\u0000l@example.com", "password": CARD})
        listing = await client.get("/v1/products", params={"category": "books\u0000"})
        order = await client.get("/v1/orders/o%00rder", headers=auth)
        health = await client.get("/health")
    if backend.name == "embedded":  # SQLite stores and compares NUL like any character
        assert (register.status_code, login.status_code, listing.status_code, order.status_code) == \
            (201, 401, 200, 404)
    else:
        problems = [p for name, response in (("register", register), ("login", login), ("listing", listing),
                                             ("order", order))
                    for p in _problems(name, response, 422)]
        assert not problems, "\n".join(problems)
    assert health.status_code == 200  # the database was never the problem
