"""Shared fixtures: a configured Telemetry with an in-memory span exporter, /metrics parsing."""

from __future__ import annotations

import asyncio
import gc
import io
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.openmetrics.parser import text_string_to_metric_families

import otel_setup
from otel_setup.exposition import render
from otel_setup.settings import TelemetrySettings

_TELEMETRY_ENV = (
    "ENVIRONMENT", "SENTRY_ENVIRONMENT", "APP_VERSION", "SENTRY_RELEASE", "SENTRY_DSN",
    "OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG", "OTEL_METRICS_EXEMPLAR_FILTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_SEMCONV_STABILITY_OPT_IN", "OTEL_METRICS_EXPORTER",
)


def _print_tasks(loop: asyncio.AbstractEventLoop) -> None:
    out = io.StringIO()
    for task in asyncio.all_tasks(loop):
        out.write(f"--- task {task.get_name()} (cancelling {task.cancelling()})\n")
        task.print_stack(file=out)
    sys.stderr.write(out.getvalue())


@pytest.fixture(autouse=True)
def stuck_tasks(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test still running 30 s before pytest-timeout ends it prints its event loop's tasks: the
    thread dump pytest-timeout gives shows only the loop waiting, not what it waits for."""
    limit = float(request.config.getini("timeout") or 0)

    def dump() -> None:
        for loop in [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop)]:
            if loop.is_running():
                loop.call_soon_threadsafe(_print_tasks, loop)

    timer = threading.Timer(max(limit - 30, 1), dump) if limit else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    yield
    if timer is not None:
        timer.cancel()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests start from the embedded default, whatever the developer's shell exports."""
    for name in _TELEMETRY_ENV:
        monkeypatch.delenv(name, raising=False)
    yield
    active = otel_setup.current()
    if active is not None:
        active.shutdown()


@pytest.fixture
def make_telemetry(tmp_path: Any) -> Iterator[Callable[..., tuple[otel_setup.Telemetry, InMemorySpanExporter]]]:
    made: list[otel_setup.Telemetry] = []

    def make(
        service: str = "fds", app: Any = None, **overrides: Any
    ) -> tuple[otel_setup.Telemetry, InMemorySpanExporter]:
        overrides.setdefault("trace_store_dir", str(tmp_path / "traces"))
        settings = TelemetrySettings(**overrides)
        telemetry = otel_setup.configure(service, app=app, settings=settings)
        memory = InMemorySpanExporter()
        telemetry.add_span_exporter("memory", memory)
        made.append(telemetry)
        return telemetry, memory

    yield make
    for telemetry in made:
        telemetry.shutdown()


def scrape(telemetry: otel_setup.Telemetry) -> dict[str, Any]:
    """/metrics as OpenMetrics, parsed: {family name: family}."""
    body, _ = render(telemetry.registry, "application/openmetrics-text")
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def samples(telemetry: otel_setup.Telemetry, family: str) -> list[Any]:
    fam = scrape(telemetry).get(family)
    return list(fam.samples) if fam else []
