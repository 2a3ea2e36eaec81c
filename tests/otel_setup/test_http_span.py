"""The server span our middleware makes: one per request, the stable HTTP attribute names, the
caller's trace continued, errors marked."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from opentelemetry.trace import SpanKind, StatusCode

from otel_setup.catalog import Attr as A

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("engine exploded")

    return app


async def _get(app: FastAPI, path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("10.1.2.3", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.example.com:8443") as client:
        return await client.get(path, headers=headers)


async def test_one_server_span_with_the_stable_attributes_continuing_the_callers_trace(make_telemetry) -> None:
    app = _app()
    telemetry, memory = make_telemetry("ecommerce", app=app)
    response = await _get(app, "/v1/items/42?lang=ko", traceparent=f"00-{TRACE_ID}-{PARENT_ID}-01",
                          **{"user-agent": "bench/1.0"})
    assert response.status_code == 200
    telemetry.force_flush()
    servers = [s for s in memory.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert [s.name for s in servers] == ["GET /v1/items/{item_id}"]  # FastAPI's own span is off
    span = servers[0]
    assert f"{span.context.trace_id:032x}" == TRACE_ID and f"{span.parent.span_id:016x}" == PARENT_ID
    assert dict(span.attributes or {}) == {
        A.HTTP_REQUEST_METHOD: "GET", A.URL_PATH: "/v1/items/42", A.URL_QUERY: "lang=ko", A.URL_SCHEME: "http",
        A.HTTP_ROUTE: "/v1/items/{item_id}", A.HTTP_RESPONSE_STATUS_CODE: 200, A.NETWORK_PROTOCOL_VERSION: "1.1",
        A.SERVER_ADDRESS: "shop.example.com", A.SERVER_PORT: 8443, A.CLIENT_ADDRESS: "10.1.2.3", A.CLIENT_PORT: 40000,
        A.USER_AGENT_ORIGINAL: "bench/1.0"}
    assert span.status.status_code is StatusCode.UNSET


async def test_an_unhandled_exception_marks_the_span_and_an_unknown_path_keeps_the_method_alone(
        make_telemetry) -> None:
    app = _app()
    telemetry, memory = make_telemetry("ecommerce", app=app)
    assert (await _get(app, "/v1/boom")).status_code == 500
    assert (await _get(app, "/nowhere")).status_code == 404
    telemetry.force_flush()
    spans = {s.name: s for s in memory.get_finished_spans() if s.kind is SpanKind.SERVER}
    assert set(spans) == {"GET /v1/boom", "GET"}
    boom = spans["GET /v1/boom"]
    assert boom.status.status_code is StatusCode.ERROR
    assert boom.attributes[A.ERROR_TYPE] == "RuntimeError" and boom.attributes[A.HTTP_RESPONSE_STATUS_CODE] == 500
    assert [e.name for e in boom.events] == ["exception"]
    unknown = spans["GET"]
    assert A.HTTP_ROUTE not in unknown.attributes and unknown.attributes[A.HTTP_RESPONSE_STATUS_CODE] == 404
    assert unknown.status.status_code is StatusCode.UNSET
