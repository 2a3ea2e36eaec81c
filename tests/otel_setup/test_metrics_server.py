"""Who may read /metrics and where: a bearer token, an internal port, and a real Prometheus
scraping with the token (``otel_setup.metrics_server``)."""

import logging
import socket
import uuid

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from otel_setup.metrics_server import authorized
from tests.procs import free_port, prometheus, uvicorn_app

OPENMETRICS = {"Accept": "application/openmetrics-text"}


def _app():
    app = FastAPI()

    @app.get("/v1/products/{product_id}")
    async def product(product_id: str):
        return {"id": product_id}

    return app


async def _get(app, path, headers=None):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.get(path, headers=headers)


def _families(text):
    return {f.name for f in text_string_to_metric_families(text)}


async def test_metrics_stay_open_on_the_app_by_default(make_telemetry):
    app = _app()
    make_telemetry("ecommerce", app=app)
    await _get(app, "/v1/products/1")
    response = await _get(app, "/metrics", OPENMETRICS)
    assert response.status_code == 200 and "ecommerce_http_requests" in _families(response.text)


async def test_a_token_is_required_when_set(make_telemetry):
    token = uuid.uuid4().hex
    app = _app()
    make_telemetry("ecommerce", app=app, metrics_token=token)
    await _get(app, "/v1/products/1")
    for headers in ({}, {"Authorization": f"Bearer {token}x"}, {"Authorization": "Bearer "},
                    {"Authorization": f"Basic {token}"}, {"Authorization": token}):
        refused = await _get(app, "/metrics", headers)
        assert refused.status_code == 401, headers
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "ecommerce_http_requests" not in refused.text
    allowed = await _get(app, "/metrics", {**OPENMETRICS, "Authorization": f"bearer {token}"})
    assert allowed.status_code == 200 and "ecommerce_http_requests" in _families(allowed.text)


def test_the_token_check_compares_the_whole_token():
    assert authorized(None, None) and authorized("anything", "")
    assert authorized("Bearer abc", "abc") and authorized("BEARER  abc", "abc")
    assert not authorized("Bearer ab", "abc") and not authorized("Bearer abcd", "abc")
    assert not authorized(None, "abc") and not authorized("abc", "abc")


async def test_an_internal_port_serves_metrics_and_the_app_does_not(make_telemetry):
    port, token = free_port(), uuid.uuid4().hex
    app = _app()
    telemetry, _ = make_telemetry("ecommerce", app=app, metrics_port=port, metrics_token=token)
    await _get(app, "/v1/products/1")
    assert (await _get(app, "/metrics")).status_code == 404
    assert (await _get(app, "/metrics", {"Authorization": f"Bearer {token}"})).status_code == 404
    internal = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=internal, timeout=5) as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/other", headers={"Authorization": f"Bearer {token}"})).status_code == 404
        scraped = await client.get("/metrics", headers={**OPENMETRICS, "Authorization": f"Bearer {token}"})
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("application/openmetrics-text")
    assert "ecommerce_http_requests" in _families(scraped.text)
    telemetry.shutdown()  # the listener goes with the telemetry
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{internal}/metrics", timeout=2)


async def test_a_taken_metrics_port_warns_and_never_falls_back_to_the_app(make_telemetry, caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = _app()
        with caplog.at_level(logging.WARNING, logger="otel_setup"):
            telemetry, _ = make_telemetry("ecommerce", app=app, metrics_port=port)
        assert telemetry.metrics_server is None
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 1, warned
        assert warned[0].startswith(f"cannot serve /metrics on 127.0.0.1:{port} (")
        assert warned[0].endswith("); metrics are not served")
        assert (await _get(app, "/v1/products/1")).status_code == 200
        assert (await _get(app, "/metrics")).status_code == 404


@pytest.mark.prometheus
def test_prometheus_scrapes_the_internal_port_with_the_token(tmp_path):
    token, port = uuid.uuid4().hex, free_port()
    env = {"SHOPFDS_TRACE_STORE_DIR": str(tmp_path / "traces"), "SHOPFDS_METRICS_TOKEN": token,
           "SHOPFDS_METRICS_PORT": str(port)}
    with uvicorn_app("tests.apps.engine_app:app", env, tmp_path / "app.log") as app:
        httpx.post(f"{app}/v1/fds/evaluate")
        assert httpx.get(f"{app}/metrics").status_code == 404
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 401
        # prometheus() waits until the target is up: a refused scrape would time out here.
        with prometheus([f"127.0.0.1:{port}"], tmp_path / "prom", token=token) as prom:
            result = httpx.get(f"{prom}/api/v1/query", params={"query": "fds_http_requests_total"}).json()
    series = result["data"]["result"]
    assert series and series[0]["metric"]["endpoint"] == "/v1/fds/evaluate", series


@pytest.mark.parametrize("value", ["abc", "0", "70000"])
def test_an_invalid_metrics_port_serves_metrics_nowhere(tmp_path, value):
    """Regression: an invalid SHOPFDS_METRICS_PORT fell back to the default, /metrics on the public
    app, exposing what the setting was meant to hide."""
    env = {"SHOPFDS_TRACE_STORE_DIR": str(tmp_path / "traces"), "SHOPFDS_METRICS_PORT": value}
    with uvicorn_app("tests.apps.engine_app:app", env, tmp_path / "app.log") as app:
        assert httpx.post(f"{app}/v1/fds/evaluate").status_code == 200
        assert httpx.get(f"{app}/metrics").status_code == 404
    assert "invalid SHOPFDS_METRICS_PORT" in (tmp_path / "app.log").read_text()
