"""Each request has a Sentry scope of its own.

Regression: without one, breadcrumbs of every request piled up in one global scope, so an error
event carried the last 100 breadcrumbs of other requests (other shoppers' included), and
``before_send`` scrubbed all of them again, on the request path, for every event.
"""

import httpx
import sentry_sdk
from fastapi import FastAPI

import otel_setup
from tests.otel_setup.test_export import _wait_for
from tests.receiver import Receiver


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/orders/{order_id}")
    async def order(order_id: str, fail: bool = False) -> dict[str, str]:
        otel_setup.add_breadcrumb(f"order {order_id} looked up", category="order")
        if fail:
            raise RuntimeError(f"order {order_id} failed")
        return {"order_id": order_id}

    return app


async def test_an_error_event_carries_only_its_own_requests_breadcrumbs(make_telemetry):
    with Receiver() as rx:
        app = _app()
        make_telemetry("ecommerce", app=app, sentry_dsn=f"http://k@127.0.0.1:{rx.port}/1")
        otel_setup.add_breadcrumb("before any request", category="startup")
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            for order_id in ("o-1", "o-2", "o-3"):
                assert (await client.get(f"/orders/{order_id}")).status_code == 200
            assert (await client.get("/orders/o-4", params={"fail": "true"})).status_code == 500
        # Outside any request, the process scope still has its own (start-up, background work).
        sentry_sdk.capture_message("outside any request", level="warning")
        sentry_sdk.flush(5)
        assert _wait_for(lambda: len(rx.sentry_events()) >= 2)
    events = {e.get("message") or e["exception"]["values"][0]["value"]: _crumbs(e) for e in rx.sentry_events()}
    assert events == {"order o-4 failed": ["order o-4 looked up"], "outside any request": ["before any request"]}


def _crumbs(event):
    return [c.get("message") for c in event.get("breadcrumbs", {}).get("values", [])
            if c.get("category") in ("order", "startup")]
