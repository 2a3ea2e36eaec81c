"""Prometheus remote-writes to a real VictoriaMetrics while the four real services run, and every
panel query of the three dashboards returns on VictoriaMetrics the series it returns on Prometheus.

The store of deploy/kubernetes is a VictoriaMetrics cluster; here Debian's single-node
``victoria-metrics`` (the same storage and query engine, MetricsQL) stands in for it, started on a
free port. Prometheus (the local one, with the recording rules of prometheus/rules) scrapes every
second and remote-writes; the traffic is the dashboards test's (tests/pipeline/test_dashboards.py).
Values are compared point by point, allowing one scrape interval of time between the two engines'
views (lookback windows and step alignment differ; the samples are the same); quantiles by the
histogram bucket they fall in, give or take two.
"""

from __future__ import annotations

import bisect
import math
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from otel_setup import catalog
from shopfds.procs import free_port, prometheus_binary, stop, wait_http, wait_scraped
from shopfds.stack import Stack, prometheus_config, run_stack
from tests.pipeline.test_dashboards import SPEC_UIDS, _drive, _exprs, _panels, _prime, metric_names

SCRAPE_S = 1
# Relative difference allowed between the engines' values of a windowed function (rate, increase,
# *_over_time) over the same samples: Prometheus extrapolates to the window's edges, MetricsQL does
# not. Everything else must be equal.
WINDOWED_TOLERANCE = 0.25
VALUE_TOLERANCE = 1e-6


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed (make prometheus installs it with apt-get)"
        (pytest.fail if os.environ.get("CI") else pytest.skip)(message)
    assert found is not None
    return found


@pytest.fixture(scope="module")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = _binary("victoria-metrics")
    workdir = tmp_path_factory.mktemp("victoria")
    port = free_port()
    with (workdir / "victoria.log").open("wb") as out:
        proc = subprocess.Popen(
            [binary, f"-httpListenAddr=127.0.0.1:{port}", f"-storageDataPath={workdir / 'data'}",
             "-retentionPeriod=1d", "-search.latencyOffset=0s", "-search.disableCache", "-loggerLevel=ERROR"],
            stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/health", timeout=30, proc=proc)
            yield url
        finally:
            stop(proc)


def _prometheus(stack: Stack, workdir: Path, victoria: str) -> Iterator[str]:
    if prometheus_binary() is None:
        _binary("prometheus")
    config_path = prometheus_config(stack.urls, workdir, interval=f"{int(SCRAPE_S)}s")
    config = yaml.safe_load(config_path.read_text())
    config["remote_write"] = [{"url": f"{victoria}/api/v1/write",
                               "queue_config": {"batch_send_deadline": "500ms", "min_backoff": "100ms"}}]
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    with (workdir / "prometheus.log").open("wb") as out:
        proc = subprocess.Popen(
            [str(prometheus_binary()), f"--config.file={config_path}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--enable-feature=exemplar-storage"],
            stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/-/ready", timeout=30, proc=proc)
            wait_scraped(url, len(stack.urls))
            yield url
        finally:
            stop(proc)


def _query(base: str, expr: str, path: str = "/api/v1/query", **params: Any) -> list[dict[str, Any]]:
    body = httpx.get(f"{base}{path}", params={"query": expr, **params}, timeout=20).json()
    assert body["status"] == "success", (base, expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _latest(base: str, expr: str) -> float:
    found = _query(base, expr)
    return float(found[0]["value"][1]) if found else 0.0


def _steady(stack: Stack, seconds: float) -> None:
    """Evaluations and product reads at a steady pace, of kinds the traffic already made: windows
    over this stretch see no new series, so both engines read the same samples (compared below)."""
    stop_at = time.monotonic() + seconds
    with httpx.Client(timeout=10) as http:
        while time.monotonic() < stop_at:
            txn = {"transaction_id": f"steady-{uuid.uuid4().hex[:12]}", "order_id": "o-steady", "user_id": "u-steady",
                   "amount": 10_000, "currency": "KRW", "payment_method": "card", "ip_address": "10.9.9.9",
                   "email": "steady@example.com", "billing_country": "KR", "shipping_country": "KR"}
            assert http.post(f"{stack.urls['fds']}/v1/fds/evaluate", json=txn).status_code == 200
            assert http.get(f"{stack.urls['ecommerce']}/v1/products").status_code == 200
            time.sleep(0.2)


@pytest.fixture(scope="module")
def live(victoria: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, float, float]]:
    workdir = tmp_path_factory.mktemp("remote-write")
    env = {"OTEL_BSP_SCHEDULE_DELAY": "200", "SHOPFDS_PAYMENT_FAILURE_RATE": "0",
           "SHOPFDS_BLOCKED_THRESHOLD": "100"}
    with run_stack(workdir, env=env) as stack:
        for prom in _prometheus(stack, workdir / "prometheus", victoria):
            start = time.time()
            _prime(stack, prom)
            evaluations = _drive(stack)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and _latest(prom, "sum(fds_evaluations_total)") < evaluations:
                time.sleep(0.3)
            assert _latest(prom, "sum(fds_evaluations_total)") >= evaluations, "Prometheus missed evaluations"
            _steady(stack, seconds=8 * SCRAPE_S)
            end = time.time() + 2 * SCRAPE_S
            while time.monotonic() < deadline + 10 and _latest(prom, "max(timestamp(up))") < end:
                time.sleep(0.3)
            assert _latest(prom, "max(timestamp(up))") >= end, "Prometheus stopped scraping"
            # Remote write lags by its batch deadline; VictoriaMetrics has everything up to `end`
            # once its newest sample of every target is at least that new.
            while time.monotonic() < deadline + 25 and _latest(victoria, "min(timestamp(up))") < end:
                time.sleep(0.3)
            assert _latest(victoria, "min(timestamp(up))") >= end, "remote write did not reach VictoriaMetrics"
            yield prom, victoria, start, end


WINDOW = re.compile(r"\[(\d+)([smh])\]")
UNIT_S = {"s": 1, "m": 60, "h": 3600}


def _grafana(expr: str, start: float, end: float, widen: int = 0) -> str:
    """Grafana's variables as Grafana fills them for a 1 s scrape interval ($__rate_interval is
    four scrape intervals), every range window then widened by ``widen`` seconds.

    MetricsQL's rate()/increase() also read the last sample before the window (its docs, "MetricsQL
    takes into account the last raw sample before the lookbehind window"): Prometheus sees the
    same samples when its window reaches one scrape interval further back.
    """
    text = (expr.replace("$__rate_interval", "4s").replace("$__range", f"{int(end - start) + 1}s")
            .replace("$__interval", "2s"))
    return WINDOW.sub(lambda m: f"[{int(m[1]) * UNIT_S[m[2]] + widen}s]", text)


def _window_s(expr: str) -> int:
    """The longest range window of an expanded expression (0: none)."""
    return max((int(m[1]) * UNIT_S[m[2]] for m in WINDOW.finditer(expr)), default=0)


Series = dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]


def _series(base: str, expr: str, start: float, end: float) -> Series:
    found = _query(base, expr, "/api/v1/query_range", start=start, end=end, step=f"{SCRAPE_S}s", nocache=1)
    out: Series = {}
    for item in found:
        labels = tuple(sorted((k, v) for k, v in item["metric"].items() if k != "__name__"))
        points = [(float(t), float(v)) for t, v in item["values"] if not math.isnan(float(v))]
        if points:
            out[labels] = points
    return out


def _last_birth(prom: str, expr: str, start: float, end: float) -> float:
    """When the youngest input series of ``expr`` got its first sample. Before a window has seen
    one sample of every input, the engines disagree by design: Prometheus needs two samples of a
    series for a rate, MetricsQL counts the first one as an increase from zero."""
    names = metric_names(expr)
    if not names:
        return start
    selector = '{__name__=~"' + "|".join(sorted(names)) + '"}'
    firsts = [points[0][0] for points in _series(prom, selector, start, end).values()]
    return max(firsts, default=end)


def _close(a: float, b: float, tolerance: float) -> bool:
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tolerance * max(abs(a), abs(b)) + 1e-9


Same = Callable[[float, float], bool]


def _within(tolerance: float) -> Same:
    return lambda a, b: _close(a, b, tolerance)


def _same_bucket_or_next(edges: list[float]) -> Same:
    """Quantiles read from histograms jump whole buckets when one observation moves between
    windows: a quantile is compared by the bucket it falls in (as bench.checkout compares P95s).
    MetricsQL's rate also reads the sample before the window, so with a handful of observations
    per window one of them can move a P95 across two narrow buckets (0.001 | 0.0025 | 0.005)."""
    return lambda a, b: abs(bisect.bisect_left(edges, a) - bisect.bisect_left(edges, b)) <= 2


def _comparison(expr: str, window: int) -> Same:
    if "histogram_quantile" in expr:
        edges = sorted({edge for name in metric_names(expr) if name.endswith("_bucket")
                        for edge in catalog.ALL[name.removesuffix("_bucket")].buckets or ()})
        assert edges, expr
        return _same_bucket_or_next(edges)
    return _within(WINDOWED_TOLERANCE if window else VALUE_TOLERANCE)


def _mismatch(prom: Series, vm: Series, same: Same, after: float = 0.0) -> list[str]:
    """Every series on one side is on the other, and each VictoriaMetrics point from ``after`` on
    equals a Prometheus point of its series at most one scrape interval away."""
    problems = []
    if set(prom) != set(vm):
        problems.append(f"series only on Prometheus: {sorted(set(prom) - set(vm))[:3]}; "
                        f"only on VictoriaMetrics: {sorted(set(vm) - set(prom))[:3]}")
    for labels in set(prom) & set(vm):
        theirs = prom[labels]
        for t, value in vm[labels]:
            near = [v for u, v in theirs if abs(u - t) <= SCRAPE_S + 1e-6]
            if t >= after and near and not any(same(value, v) for v in near):
                problems.append(f"{dict(labels)} at {t}: VictoriaMetrics {value}, Prometheus {near}")
                break
    return problems


def test_the_value_comparison_can_fail() -> None:
    one = {(("job", "fds"),): [(10.0, 1.0), (11.0, 2.0)]}
    assert not _mismatch(one, {(("job", "fds"),): [(10.0, 1.0), (11.0, 2.0)]}, _within(VALUE_TOLERANCE))
    assert _mismatch(one, {(("job", "fds"),): [(10.0, 5.0)]}, _within(WINDOWED_TOLERANCE))
    assert _mismatch(one, {(("job", "ml"),): [(10.0, 1.0)]}, _within(VALUE_TOLERANCE))
    quantile = _comparison("histogram_quantile(0.95, rate(fds_evaluation_duration_seconds_bucket[4s]))", 4)
    assert quantile(0.004, 0.009) and not quantile(0.004, 0.03)  # 0.005 | 0.01 | 0.025 edges


@pytest.mark.prometheus
@pytest.mark.parametrize("uid", sorted(SPEC_UIDS))
def test_every_panel_query_returns_the_same_series_on_victoriametrics(
        live: tuple[str, str, float, float], uid: str) -> None:
    prom, vm, start, end = live
    problems, series, steady = [], 0, 0
    for panel in _panels(uid):
        for expr in _exprs(panel):
            query = _grafana(expr, start, end)
            theirs = _series(prom, _grafana(expr, start, end, widen=SCRAPE_S), start, end)
            ours = _series(vm, query, start, end)
            series += len(theirs)
            window = _window_s(query)
            after = _last_birth(prom, expr, start, end) + window + SCRAPE_S if window else start
            steady += sum(1 for points in ours.values() for t, v in points if t >= after and v != 0)
            found = _mismatch(theirs, ours, _comparison(expr, window), after)
            problems += [f"{panel['title']}: {p}" for p in found]
    assert series, f"{uid}: no panel returned data on Prometheus"
    assert steady, f"{uid}: no non-zero value was compared"
    assert not problems, "\n".join(problems)


@pytest.mark.prometheus
def test_raw_samples_are_identical(live: tuple[str, str, float, float]) -> None:
    """Counters and histogram buckets as scraped: the same numbers in both stores."""
    prom, vm, start, end = live
    for expr in ("fds_evaluations_total", "fds_evaluation_duration_seconds_bucket",
                 "ecommerce_http_requests_total", "up"):
        theirs, ours = _series(prom, expr, start, end), _series(vm, expr, start, end)
        assert theirs, expr
        assert not _mismatch(theirs, ours, _within(VALUE_TOLERANCE)), expr


@pytest.mark.prometheus
def test_exemplars_stay_in_prometheus(live: tuple[str, str, float, float]) -> None:
    """docs/scaling.md: Prometheus keeps the exemplars, VictoriaMetrics stores none."""
    prom, vm, start, end = live
    params = {"query": "fds_evaluation_duration_seconds_bucket", "start": start, "end": end}
    body = httpx.get(f"{prom}/api/v1/query_exemplars", params=params, timeout=10).json()
    assert any(s["exemplars"] for s in body["data"]), "Prometheus holds no exemplar"
    response = httpx.get(f"{vm}/api/v1/query_exemplars", params=params, timeout=10)
    stored = response.json().get("data") if response.status_code == 200 else None
    assert not stored, f"VictoriaMetrics now returns exemplars: update docs/scaling.md ({stored!r:.200})"
