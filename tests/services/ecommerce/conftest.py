"""Ecommerce test helpers: an app on the test's back end, a signed-in shopper, a checkout body.

The FDS is unreachable unless a test passes ``fds_transport`` (a closed local port), so the
fail policy applies by default.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from otel_setup.settings import TelemetrySettings
from services.common.security import issue_token
from services.ecommerce.app import create_app
from services.ecommerce.settings import Settings

from ..conftest import Backend

CARD = "4111111111111111"
DEAD_FDS = "http://127.0.0.1:9"


def make_app(backend: Backend, tmp_path: Path, fds_transport: httpx.AsyncBaseTransport | None = None,
             **settings: Any) -> FastAPI:
    settings.setdefault("fds_url", DEAD_FDS if fds_transport is None else "http://fds")
    return create_app(Settings(**backend.overrides, **settings),
                      telemetry_settings=TelemetrySettings(trace_store_dir=str(tmp_path / "traces")),
                      fds_transport=fds_transport)


async def shopper(client: httpx.AsyncClient, email: str | None = None) -> dict[str, str]:
    """Register and log in a new shopper; the Authorization header."""
    email = email or f"{uuid.uuid4().hex[:10]}@example.com"
    created = await client.post("/v1/auth/register", json={"email": email, "password": "s3cret-pass",
                                                           "name": "Kim"})
    assert created.status_code == 201, created.text
    login = await client.post("/v1/auth/login", json={"email": email, "password": "s3cret-pass"})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def staff(app: FastAPI, role: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(app.state.settings.jwt_secret, role, role, 300)}"}


def checkout_body(method: str = "card", **payment: Any) -> dict[str, Any]:
    if method == "card":
        payment = {"card_number": CARD, "expiry": "12/99", "cvv": "123", **payment}
    return {"payment": {"method": method, **payment}, "billing_country": "KR", "shipping_country": "KR",
            "device_id": "device-test-1"}


async def fill_cart(client: httpx.AsyncClient, auth: dict[str, str], *lines: tuple[int, int]) -> None:
    for product_id, quantity in lines or ((1, 1),):
        added = await client.post("/v1/cart/items", json={"product_id": product_id, "quantity": quantity},
                                  headers=auth)
        assert added.status_code == 201, added.text


def counter(samples: list[Any], **labels: str) -> float:
    """Sum of the ``_total`` samples whose labels include ``labels``."""
    return sum(s.value for s in samples
               if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items()))
