"""The three real apps in one process: FDS, ecommerce (calling the FDS) and admin (calling both).

``FaultyTransport`` stands for a network that fails: it wraps a real app's ASGI transport and,
while ``failing`` is set, drops requests whose path ends with ``suffix`` before they arrive
(``when="before"``) or after the app handled them, losing the answer (``when="after"``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from otel_setup.settings import TelemetrySettings
from services.ecommerce.app import create_app as create_ecommerce
from services.ecommerce.settings import Settings as EcommerceSettings
from services.fds.app import create_app as create_fds
from services.fds.settings import Settings as FdsSettings

from ..conftest import Backend, serve
from .helpers import DEAD, bearer, make_admin

# services/fds/feeds/bad_devices.txt lists this device: the CTI engine scores it 80, which alone
# is a "high" risk (60 <= score < 85) -> hold, for a first order with nothing else unusual.
HELD_DEVICE = "device-emulator-farm-01"


class FaultyTransport(httpx.AsyncBaseTransport):
    def __init__(self, app: FastAPI, suffix: str, when: str = "before") -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.suffix = suffix
        self.when = when
        self.failing = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        hit = self.failing and request.url.path.endswith(self.suffix)
        if hit and self.when == "before":
            raise httpx.ConnectError("injected: connection refused", request=request)
        response = await self.inner.handle_async_request(request)
        if hit:
            await response.aread()
            raise httpx.ReadTimeout("injected: answer lost", request=request)
        return response


@dataclass
class System:
    fds: FastAPI
    shop_app: FastAPI
    admin_app: FastAPI
    shop: httpx.AsyncClient
    fds_client: httpx.AsyncClient
    admin: httpx.AsyncClient
    admin_headers: dict[str, str]

    async def order(self, device_id: str = "device-ok-1") -> dict[str, Any]:
        """A new shopper's checkout of one product; the order as ecommerce returns it."""
        email = f"{uuid.uuid4().hex[:10]}@example.com"
        await self.shop.post("/v1/auth/register", json={"email": email, "password": "s3cret-pass", "name": "Kim"})
        login = await self.shop.post("/v1/auth/login", json={"email": email, "password": "s3cret-pass"})
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        added = await self.shop.post("/v1/cart/items", json={"product_id": 1, "quantity": 1}, headers=auth)
        assert added.status_code == 201, added.text
        body = {"payment": {"method": "card", "card_number": "4111111111111111", "expiry": "12/99", "cvv": "123"},
                "billing_country": "KR", "shipping_country": "KR", "device_id": device_id}
        created = await self.shop.post("/v1/orders", json=body, headers=auth)
        assert created.status_code == 201, created.text
        return dict(created.json())

    async def held_order(self) -> dict[str, Any]:
        order = await self.order(HELD_DEVICE)
        assert (order["status"], order["next_action"], order["fds"]["decision"]) == ("pending", "review", "hold")
        return order

    async def shop_order(self, order_id: str) -> dict[str, Any]:
        response = await self.shop.get(f"/v1/orders/{order_id}", headers=bearer(self.shop_app, "service"))
        return dict(response.json())

    async def fds_transaction(self, transaction_id: str) -> dict[str, Any]:
        response = await self.fds_client.get(f"/v1/fds/transactions/{transaction_id}",
                                             headers=bearer(self.fds, "service"))
        return dict(response.json())

    def resolve(self, transaction_id: str, decision: str, is_fraud: bool) -> Any:
        return self.admin.post(f"/v1/admin/reviews/{transaction_id}/resolve", headers=self.admin_headers,
                               json={"decision": decision, "is_fraud": is_fraud})


@asynccontextmanager
async def running_system(backend: Backend, tmp_path: Path, *, fds_fault: tuple[str, str] | None = None,
                         shop_fault: tuple[str, str] | None = None) -> AsyncIterator[tuple[System, list[Any]]]:
    """Start FDS, ecommerce, then admin (last: its metrics are the active ones). Also yields the
    faulty transports, in the order (fds, ecommerce), for the faults asked for."""
    def telemetry(name: str) -> TelemetrySettings:
        return TelemetrySettings(trace_store_dir=str(tmp_path / "traces" / name))

    fds = create_fds(FdsSettings(**backend.overrides, ml_url=DEAD), telemetry_settings=telemetry("fds"))
    async with AsyncExitStack() as stack:
        fds_client = await stack.enter_async_context(serve(fds))
        shop_app = create_ecommerce(EcommerceSettings(**backend.overrides, fds_url="http://fds"),
                                    telemetry_settings=telemetry("ecommerce"),
                                    fds_transport=httpx.ASGITransport(app=fds))
        shop = await stack.enter_async_context(serve(shop_app))
        faults = [FaultyTransport(fds, *fds_fault) if fds_fault else None,
                  FaultyTransport(shop_app, *shop_fault) if shop_fault else None]
        admin_app = make_admin(backend, tmp_path, fds_url="http://fds", ecommerce_url="http://ecommerce",
                               fds_transport=faults[0] or httpx.ASGITransport(app=fds),
                               ecommerce_transport=faults[1] or httpx.ASGITransport(app=shop_app))
        admin = await stack.enter_async_context(serve(admin_app))
        system = System(fds, shop_app, admin_app, shop, fds_client, admin, bearer(admin_app, "admin"))
        yield system, [f for f in faults if f is not None]
