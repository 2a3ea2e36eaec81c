"""Telemetry backends that fail do not hurt the shop.

The FDS runs as real uvicorn processes exporting OTLP traces, metrics and logs and sending Sentry
events (``SHOPFDS_SLA_SECONDS`` is set so low that every evaluation breaks the SLA, which the FDS
reports to Sentry as a warning) to one backend each:

- ``healthy``: ``tests.receiver`` answering 200 (the baseline);
- ``refused``: a closed port; ``black_hole``: accepts and reads, never answers;
- ``http_429`` / ``http_503``: answers that status to everything.

Each faulty process gets three rounds of a fixed-rate load (open loop). It must show:

- no failed request, and none held up by the backend: every answer comes sooner than the OTLP
  export timeout that one export to the dead backend waits (latency is a figure in the log here;
  ``bench.backends_down`` measures what telemetry to a dead backend costs, on a quiet machine);
- RSS within healthy + 50 MB (the queues in front of the dead backend are bounded);
- the losses on its own ``/metrics``: ``otel_setup_export_failures_total`` (traces and metrics),
  ``otel_setup_spans_dropped_total`` and ``otel_setup_sentry_events_dropped_total`` by reason;
- SIGTERM to exit within 5 s, the black hole included.

A bad setting (unknown sampler, malformed OTLP endpoint or headers, bad DSN) warns once and
falls back; the service starts and serves.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shopfds.procs import ROOT, free_port, wait_http
from tests.receiver import Receiver

from .backends import BlackHole, StatusServer, refused

log = logging.getLogger(__name__)

RATE = 20.0  # requests per second to each service, fixed (open loop): far from saturation
PER_ROUND = 50
ROUNDS = 3
# OTEL_EXPORTER_OTLP_TIMEOUT (its default, set explicitly): an export to the black hole waits this
# long, so a request that waited on one would take at least as long.
EXPORT_TIMEOUT_S = 5
RSS_MARGIN_MB = 50
SHUTDOWN_LIMIT_S = 5.0
# Sentry loss reasons each fault must show (otel_setup.sentry_transport).
SENTRY_REASONS = {"refused": {"network_error"}, "black_hole": {"network_error"},
                  "http_429": {"status_429", "rate_limited"}, "http_503": {"status_503"}}
_INHERITED = ("OTEL_", "SENTRY_", "SHOPFDS_", "DATABASE_URL", "REDIS_URL", "ENVIRONMENT", "APP_VERSION")


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError(f"no VmRSS for {self.name}")

    def counters(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        body = httpx.get(f"{self.url}/metrics", timeout=5).text
        return {frozenset(s.labels.items()): s.value for family in text_string_to_metric_families(body)
                for s in family.samples if s.name == name}

    def total(self, name: str, **labels: str) -> float:
        return sum(v for k, v in self.counters(name).items() if set(labels.items()) <= k)

    def stop(self) -> float:
        """SIGTERM; seconds until the process is gone (killed after 15 s)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        return time.monotonic() - started


def _env(backend_url: str, workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED)}
    host = backend_url.removeprefix("http://")
    return {**env, "PYTHONPATH": str(ROOT),
            "OTEL_EXPORTER_OTLP_ENDPOINT": backend_url, "SENTRY_DSN": f"http://public@{host}/1",
            "OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_EXPORTER_OTLP_TIMEOUT": str(EXPORT_TIMEOUT_S),
            "SHOPFDS_SLA_SECONDS": "0.000001", "SHOPFDS_LOG_FORMAT": "json",
            "SHOPFDS_DATA_DIR": str(workdir / "data"), "SHOPFDS_TRACE_STORE_DIR": str(workdir / "traces"),
            "SHOPFDS_ML_URL": refused()}  # no ML service: rules and CTI decide (degraded)


def _spawn(name: str, env: dict[str, str], workdir: Path) -> tuple[str, subprocess.Popen[bytes], int, Path]:
    port = free_port()
    log_path = workdir / f"{name}.log"
    workdir.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "services.fds.main:app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env, stdout=out,
            stderr=subprocess.STDOUT)
    return name, proc, port, log_path


def _started(spawned: list[tuple[str, subprocess.Popen[bytes], int, Path]]) -> dict[str, Service]:
    services = {}
    for name, proc, port, log_path in spawned:
        try:
            wait_http(f"http://127.0.0.1:{port}/health", timeout=90, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{name} did not start: {exc}\n{log_path.read_text()[-3000:]}") from exc
        services[name] = Service(name, proc, f"http://127.0.0.1:{port}", log_path)
    return services


def _transaction() -> dict[str, Any]:
    user = uuid.uuid4().hex[:12]  # a new shopper each time: no history grows between rounds
    return {"transaction_id": uuid.uuid4().hex, "order_id": f"o-{user}", "user_id": f"u-{user}",
            "amount": random.choice((12_000, 35_000, 89_000)), "currency": "KRW", "payment_method": "card",
            "card_bin": "411111", "card_last4": "1111", "device_id": f"d-{user}",
            "ip_address": f"175.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}",
            "email": f"{user}@example.com", "billing_country": "KR", "shipping_country": "KR"}


async def _round(*urls: str, count: int = PER_ROUND) -> list[tuple[list[float], int]]:
    """``count`` evaluations per service, sent at a fixed total rate whatever the answers take,
    the services taking turns request by request (H F F H ...: the same moments of a noisy
    machine for each). Per service: latencies (s) and failed requests."""
    latencies: list[list[float]] = [[] for _ in urls]
    failures = [0 for _ in urls]
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        async def one(index: int) -> None:
            started = time.perf_counter()
            try:
                response = await client.post(f"{urls[index]}/v1/fds/evaluate", json=_transaction())
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies[index].append(time.perf_counter() - started)
            failures[index] += not ok

        begin, tasks = time.perf_counter(), []
        rate = RATE * len(urls)
        for i in range(count * len(urls)):
            turn, position = divmod(i, len(urls))
            index = position if turn % 2 == 0 else len(urls) - 1 - position
            await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(index)))
        await asyncio.gather(*tasks)
    return list(zip(latencies, failures, strict=True))


def _p95(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=20, method="inclusive")[-1]


@dataclass
class Fleet:
    healthy: Service
    faulty: dict[str, Service]
    misconfigured: Service
    receiver: Receiver  # the healthy one's
    misconfigured_receiver: Receiver


SECRET_HEADER = "s3cr3t-otlp-token"


def _misconfigured_env(receiver: Receiver, workdir: Path) -> dict[str, str]:
    """One bad value per telemetry setting; only the per-signal traces endpoint is usable."""
    host = receiver.url.removeprefix("http://")
    return {**_env(receiver.url, workdir),
            "OTEL_TRACES_SAMPLER": "sometimes",
            "OTEL_EXPORTER_OTLP_ENDPOINT": host,  # no scheme: malformed
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{receiver.url}/v1/traces",
            "OTEL_EXPORTER_OTLP_HEADERS": f"authorization Bearer {SECRET_HEADER},x-tenant=shopfds",
            "SENTRY_DSN": f"http://{host}/1"}  # no public key


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    workdir = tmp_path_factory.mktemp("telemetry-backends")
    with ExitStack() as stack:
        receiver, other = stack.enter_context(Receiver()), stack.enter_context(Receiver())
        backends = {"healthy": receiver.url, "refused": refused(), "black_hole": stack.enter_context(BlackHole()).url,
                    "http_429": stack.enter_context(StatusServer(429)).url,
                    "http_503": stack.enter_context(StatusServer(503)).url}
        spawned = [_spawn(name, _env(url, workdir / name), workdir / name) for name, url in backends.items()]
        spawned.append(_spawn("misconfigured", _misconfigured_env(other, workdir / "misconfigured"),
                              workdir / "misconfigured"))
        try:
            services = _started(spawned)
            # First requests pay for lazy imports and cold caches: not measured.
            asyncio.run(_round(*(s.url for s in services.values()), count=10))
            yield Fleet(services.pop("healthy"), services, services.pop("misconfigured"), receiver, other)
        finally:
            for _, proc, _, _ in spawned:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(5)


def test_healthy_baseline_exports_everything_and_loses_nothing(fleet: Fleet) -> None:
    healthy = fleet.healthy
    [(latencies, failures)] = asyncio.run(_round(healthy.url))
    assert failures == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (fleet.receiver.sentry_events() and fleet.receiver.spans()
                                                and fleet.receiver.at("/v1/metrics")):
        time.sleep(0.2)
    assert fleet.receiver.sentry_events() and fleet.receiver.spans() and fleet.receiver.at("/v1/metrics")
    assert healthy.total("otel_setup_spans_exported_total", exporter="otlp") > 0
    assert healthy.total("otel_setup_export_failures_total") == 0
    assert healthy.total("otel_setup_spans_dropped_total") == 0
    assert healthy.total("otel_setup_sentry_events_dropped_total") == 0
    log.info("healthy: P95 %.1f ms, RSS %.0f MB, Sentry events so far %d", _p95(latencies) * 1000,
             healthy.rss_mb(), len(fleet.receiver.sentry_events()))


def _served(faulty: Service) -> tuple[list[str], str]:
    """Problems (none when every request was answered, none as late as an export to the dead
    backend) and a summary of the latencies, logged as a figure."""
    latencies: list[float] = []
    failed = 0
    for _ in range(ROUNDS):
        [(round_latencies, round_failed)] = asyncio.run(_round(faulty.url))
        latencies += round_latencies
        failed += round_failed
    summary = (f"{faulty.name}: {len(latencies)} requests, P95 {_p95(latencies) * 1000:.1f} ms, "
               f"slowest {max(latencies) * 1000:.1f} ms")
    log.info(summary)
    problems = [f"{failed} failed requests"] if failed else []
    if max(latencies) >= EXPORT_TIMEOUT_S:
        problems.append(f"a request took {max(latencies):.1f} s, the time an export to the dead backend waits")
    return problems, summary


def _losses(service: Service, fault: str) -> list[str]:
    """Problems with the loss counters on the service's /metrics (waits up to 10 s for them)."""
    deadline = time.monotonic() + 10
    while True:
        sentry = {dict(k)["reason"] for k, v in service.counters("otel_setup_sentry_events_dropped_total").items()
                  if v > 0}
        problems = [f"no otel_setup_export_failures_total{{exporter={e!r}}}" for e in ("otlp", "otlp-metrics")
                    if service.total("otel_setup_export_failures_total", exporter=e) == 0]
        if service.total("otel_setup_spans_dropped_total", exporter="otlp") == 0:
            problems.append("no otel_setup_spans_dropped_total{exporter='otlp'}")
        if missing := SENTRY_REASONS[fault] - sentry:
            problems.append(f"otel_setup_sentry_events_dropped_total lacks reasons {sorted(missing)} "
                            f"(has {sorted(sentry)})")
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.5)


# The black hole last: its first export failures need the 5 s export timeout to pass.
@pytest.mark.parametrize("fault", ["refused", "http_429", "http_503", "black_hole"])
def test_failing_backend_costs_requests_nothing(fleet: Fleet, fault: str) -> None:
    faulty = fleet.faulty[fault]
    problems, summary = _served(faulty)
    problems += _losses(faulty, fault)
    healthy_rss, faulty_rss = fleet.healthy.rss_mb(), faulty.rss_mb()
    if faulty_rss > healthy_rss + RSS_MARGIN_MB:
        problems.append(f"RSS {faulty_rss:.0f} MB, healthy {healthy_rss:.0f} MB")
    log.info("%s: RSS %.0f MB (healthy %.0f); %s", fault, faulty_rss, healthy_rss, "; ".join(
        f"{name} {_labelled(faulty.counters(name))}" for name in (
            "otel_setup_export_failures_total", "otel_setup_spans_dropped_total",
            "otel_setup_sentry_events_dropped_total")))
    assert not problems, f"{fault}: " + "; ".join(problems) + f"\n{summary}"


def _labelled(counters: dict[frozenset[tuple[str, str]], float]) -> dict[str, float]:
    return {",".join(f"{k}={v}" for k, v in sorted(labels)): value for labels, value in counters.items()}


def test_sigterm_exits_within_5s_whatever_the_backend(fleet: Fleet) -> None:
    services = [fleet.healthy, *fleet.faulty.values()]
    for service in services:  # something queued for every backend when the signal comes
        asyncio.run(_round(service.url, count=10))
    with ThreadPoolExecutor(len(services)) as pool:  # stopped together: each is timed on its own
        took = dict(zip([s.name for s in services], pool.map(Service.stop, services), strict=True))
    log.info("SIGTERM to exit: %s", {name: round(seconds, 2) for name, seconds in took.items()})
    slow = {name: round(seconds, 2) for name, seconds in took.items() if seconds > SHUTDOWN_LIMIT_S}
    assert not slow, f"SIGTERM to exit over {SHUTDOWN_LIMIT_S} s: {slow}"


def test_bad_telemetry_settings_warn_once_each_and_fall_back(fleet: Fleet) -> None:
    service, receiver = fleet.misconfigured, fleet.misconfigured_receiver
    [(_, failures)] = asyncio.run(_round(service.url, count=10))
    assert failures == 0  # it started (the fixture waited for /health) and it serves
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not receiver.spans():
        time.sleep(0.2)
    # Unknown sampler -> the environment default (development: every trace), not "nothing".
    assert receiver.spans(), "no spans: the sampler did not fall back to the default"
    traces = receiver.at("/v1/traces")
    # Malformed header entry dropped, the well-formed one kept.
    assert all(r.headers.get("x-tenant") == "shopfds" and "authorization" not in r.headers for r in traces)
    # Malformed general endpoint -> no OTLP metrics or logs; bad DSN -> Sentry off.
    assert not receiver.at("/v1/metrics") and not receiver.at("/v1/logs") and not receiver.at("/envelope/")
    assert service.total("otel_setup_errors_total") == 0  # fell back cleanly, nothing failed
    output = service.log_path.read_text()
    lines = output.splitlines()
    for variable in ("OTEL_TRACES_SAMPLER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS", "SENTRY_DSN"):
        warned = [line for line in lines if variable in line]
        assert len(warned) == 1, f"{variable}: {warned}"
    assert "Traceback" not in output
    assert SECRET_HEADER not in output
