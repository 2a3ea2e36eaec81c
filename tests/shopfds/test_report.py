"""``shopfds report``: window parsing, figures from a real app's /metrics and from a real Prometheus,
the console and HTML renderings, and trace links (local command, Sentry URL, trace store)."""

from __future__ import annotations

import io
import math
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from otel_setup.trace_store import find_trace
from shopfds.histogram import histograms
from shopfds.report import Verdict, checks, collect, parse_since, render_html, run_report, sla_ok
from shopfds.report.links import sentry_trace_url, slowest_engine
from shopfds.report.svg import bar_chart, line_chart, nice_ticks, scale
from tests.procs import prometheus, uvicorn_app

FAST = dict(rule=0.008, ml=0.02, cti=0.004)  # engine seconds of a normal evaluation
SLOW = dict(rule=0.008, ml=0.02, cti=0.12)  # a slow CTI lookup
DSN = "https://public@o123.ingest.us.sentry.io/4567"


@dataclass
class Apps:
    urls: dict[str, str]
    store: Path
    slow_traces: list[str] = field(default_factory=list)

    def evaluate(self, seconds: float, engines: dict[str, float], decision: str, level: str) -> str:
        r = httpx.post(f"{self.urls['fds']}/evaluate",
                       params={"seconds": seconds, **engines, "decision": decision, "risk_level": level})
        r.raise_for_status()
        return str(r.json()["trace_id"])

    def load(self) -> None:
        """18 evaluations of 30 ms, 2 of 150 ms (slow CTI); 10 good requests, one 500 and one order."""
        for _ in range(18):
            self.evaluate(0.03, FAST, "approve", "low")
        self.slow_traces += [self.evaluate(0.15, SLOW, "hold", "high") for _ in range(2)]
        httpx.post(f"{self.urls['fds']}/outcomes", params={"tp": 8, "fp": 2, "fn": 2}).raise_for_status()
        shop = self.urls["ecommerce"]
        for _ in range(10):
            httpx.get(f"{shop}/v1/products").raise_for_status()
        assert httpx.get(f"{shop}/v1/boom").status_code == 500
        httpx.post(f"{shop}/v1/orders", params={"hits": 3, "misses": 1}).raise_for_status()


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[Apps]:
    store = tmp_path / "traces"
    env = {"SHOPFDS_TRACE_STORE_DIR": str(store), "OTEL_BSP_SCHEDULE_DELAY": "100", "SENTRY_DSN": "",
           "OTEL_EXPORTER_OTLP_ENDPOINT": "", "SHOPFDS_LOG_FORMAT": "off"}
    with ExitStack() as stack:
        urls = {name: stack.enter_context(uvicorn_app("tests.shopfds.report_app:app",
                                                      {**env, "REPORT_APP_SERVICE": name},
                                                      tmp_path / f"{name}.log"))
                for name in ("fds", "ecommerce")}
        yield Apps(urls, store)


def metrics_text(url: str) -> str:
    return httpx.get(f"{url}/metrics", headers={"Accept": "application/openmetrics-text"}).text


def wait_for(predicate, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


# -- since ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("since", "seconds"), [("5m", 300.0), ("90s", 90.0), ("1h", 3600.0), ("1.5m", 90.0),
                                                 (" 2d ", 172800.0), ("1500ms", 1.5)])
def test_since_good(since: str, seconds: float) -> None:
    assert parse_since(since) == seconds


@pytest.mark.parametrize("since", ["", "5", "m", "5 minutes", "-5m", "5w", "10ms", "0s", "100d", "5m30s"])
def test_since_bad(since: str) -> None:
    with pytest.raises(ValueError, match="--since"):
        parse_since(since)


def test_run_report_rejects_bad_since() -> None:
    with pytest.raises(ValueError, match="invalid --since"):
        run_report({}, None, "yesterday", None, Console(file=io.StringIO()))


# -- links and charts ---------------------------------------------------------------------------
def test_sentry_trace_urls() -> None:
    tid = "ab" * 16
    assert sentry_trace_url(DSN, tid) == f"https://o123.sentry.io/performance/trace/{tid}/"
    assert sentry_trace_url("https://k@o9.ingest.sentry.io/1", tid) == f"https://o9.sentry.io/performance/trace/{tid}/"
    self_hosted = sentry_trace_url("http://k@sentry.internal:9000/3", tid)
    assert self_hosted == f"http://sentry.internal:9000/organizations/sentry/performance/trace/{tid}/"
    with pytest.raises(ValueError, match="DSN"):
        sentry_trace_url("not a dsn", tid)


def test_slowest_engine_of_a_trace() -> None:
    spans = [{"name": "POST /evaluate", "duration_ms": 300.0, "attributes": {}},
             {"name": "fds.engine.ml", "duration_ms": 20.0, "attributes": {"fds.engine": "ml"}},
             {"name": "fds.engine.cti", "duration_ms": 120.0, "attributes": {"fds.engine": "cti"}}]
    assert slowest_engine(spans) == ("cti", 120.0)
    assert slowest_engine(spans[:1]) is None


def test_svg_helpers() -> None:
    assert nice_ticks(87) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(0) == [0.0, 1.0]
    assert scale(5, 0, 10, 100, 0) == 50
    assert scale(3, 3, 3, 0, 10) == 5
    chart = line_chart({"P95": [(1000.0, 40.0), (1060.0, 130.0)]}, title="t", threshold=100, threshold_label="SLA")
    assert chart.startswith("<svg") and chart.count("<polyline") == 1 and "stroke-dasharray" in chart
    assert "<svg" not in line_chart({}, title="t")
    bars = bar_chart([("rule", 9.0, 30.0), ("cti", 150.0, 50.0), ("ml", None, 40.0)], title="e")
    assert bars.count("<rect") == 2 and 'fill="#d62728"' in bars  # cti over budget is red


# -- figures from scraped /metrics --------------------------------------------------------------
def test_scraped_figures_match_histogram_math(apps: Apps) -> None:
    apps.load()
    wait_for(lambda: all(find_trace(apps.store, t) for t in apps.slow_traces), "slow traces in the store")
    f = collect(apps.urls, None, "5m", trace_store=apps.store, probe_seconds=0)
    fds = histograms(metrics_text(apps.urls["fds"]), "fds_evaluation_duration_seconds")[""]
    engines = histograms(metrics_text(apps.urls["fds"]), "fds_engine_breakdown_seconds", by="engine")
    assert f.source == "scrape" and any("cumulative" in n for n in f.notes)
    assert f.fds_p95 == fds.quantile(0.95) == pytest.approx(0.15)  # rank 19 of 20, halfway in (0.1, 0.2]
    assert f.fds_p50 == pytest.approx(0.025 + 0.025 * 10 / 18)
    assert f.engine_p95["cti"] == engines["cti"].quantile(0.95) == pytest.approx(0.15)
    assert f.engine_p95["rule"] == pytest.approx(0.005 + 0.005 * 19 / 20)
    assert f.fds_evaluations == 20 and f.sla_violations == 2
    assert f.decisions == {"approve": 18, "hold": 2} and f.risk_levels == {"low": 18, "high": 2}
    assert f.precision == pytest.approx(0.8) and f.recall == pytest.approx(0.8) and f.f1 == pytest.approx(0.8)
    assert (f.precision_n, f.recall_n) == (10, 10)  # 8 TP + 2 FP, 8 TP + 2 FN: too few for a verdict
    assert f.requests == 12 and f.error_share == pytest.approx(1 / 12) and f.cache_hit_ratio == 0.75
    assert f.tps is None  # no probe: no time base for rates
    verdicts = {c.name: c.verdict for c in checks(f)}
    assert verdicts["FDS P95"] is Verdict.FAIL and verdicts["rule engine P95"] is Verdict.PASS
    assert verdicts["cti engine P95"] is Verdict.FAIL and verdicts["cache hit ratio"] is Verdict.FAIL
    assert verdicts["precision"] is Verdict.TOO_FEW and verdicts["recall"] is Verdict.TOO_FEW
    assert not sla_ok(f)
    top = f.exemplars[0]
    assert top.seconds == pytest.approx(0.15) and top.trace_id in apps.slow_traces
    assert top.link == f"shopfds trace {top.trace_id}" and top.in_store is True
    assert top.slowest_engine == "cti" and top.slowest_engine_ms == pytest.approx(120.0)


def test_console_report_and_exit_code(apps: Apps, tmp_path: Path) -> None:
    apps.load()
    out = io.StringIO()
    code = run_report(apps.urls, None, "5m", tmp_path / "r.html", Console(file=out, width=200))
    text = out.getvalue()
    assert code == 1 and "SLAs broken: FDS P95" in text and "cumulative since" in text
    precision = next(line for line in text.splitlines() if "│ precision" in line)
    assert "0.800 (n 10)" in precision and "too few labels" in precision
    assert "shopfds trace " in text and "FAIL" in text and "150.0 ms" in text
    assert (tmp_path / "r.html").is_file()
    down = run_report({"fds": "http://127.0.0.1:9"}, None, "5m", None, Console(file=io.StringIO()))
    assert down == 2


def test_quality_verdicts_need_enough_labels(apps: Apps) -> None:
    # From the counters: 40 TP, 12 FP, 3 FN -> precision 0.769 on 52 labels (FAIL), recall 0.930 on 43.
    httpx.post(f"{apps.urls['fds']}/outcomes", params={"tp": 40, "fp": 12, "fn": 3}).raise_for_status()
    counted = {c.name: c for c in checks(collect(apps.urls, None, "5m", probe_seconds=0))}
    # The FDS's gauges and their label counts (from its database) take precedence over counters.
    httpx.post(f"{apps.urls['fds']}/quality", params={"tp": 20, "fp": 2, "fn": 1}).raise_for_status()
    gauged = {c.name: c for c in checks(collect(apps.urls, None, "5m", probe_seconds=0))}
    assert (counted["precision"].value, counted["precision"].n) == (pytest.approx(40 / 52), 52)
    assert counted["precision"].verdict is Verdict.FAIL
    assert (counted["recall"].value, counted["recall"].n, counted["recall"].verdict) == (
        pytest.approx(40 / 43), 43, Verdict.PASS)
    assert (gauged["precision"].value, gauged["precision"].n) == (pytest.approx(20 / 22), 22)
    assert gauged["precision"].verdict is gauged["recall"].verdict is Verdict.TOO_FEW


def test_sentry_dsn_gives_sentry_trace_links(apps: Apps) -> None:
    apps.load()
    f = collect(apps.urls, None, "5m", sentry_dsn=DSN, probe_seconds=0)
    assert f.exemplars and all(e.link == f"https://o123.sentry.io/performance/trace/{e.trace_id}/"
                               for e in f.exemplars)
    page = render_html(f)
    assert f'href="https://o123.sentry.io/performance/trace/{f.exemplars[0].trace_id}/"' in page


# -- HTML -----------------------------------------------------------------------------------------
VOID = {"meta", "br", "hr", "img", "input", "link"}  # HTML void elements; SVG ones close with "/>"


class Checker(HTMLParser):
    """Tags balance; collects every URL-bearing attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.refs: list[tuple[str, str, str]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.refs += [(tag, k, v or "") for k, v in attrs if k in ("href", "src", "xlink:href", "action")]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.refs += [(tag, k, v or "") for k, v in attrs if k in ("href", "src", "xlink:href")]

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()


def check_html(page: str) -> Checker:
    checker = Checker()
    checker.feed(page)
    checker.close()
    assert checker.stack == [], checker.stack
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert not ({"script", "link", "img", "iframe"} & checker.tags)
    assert "@import" not in page and "url(" not in page
    return checker


def test_html_is_self_contained(apps: Apps, tmp_path: Path) -> None:
    apps.load()
    path = tmp_path / "out" / "report.html"
    run_report(apps.urls, None, "5m", path, Console(file=io.StringIO()))
    page = path.read_text()
    checker = check_html(page)
    assert checker.refs == []  # no Sentry DSN: exemplars link to the local command, not to a URL
    assert "needs Prometheus" in page and "shopfds trace" in page and "SLAs broken" in page


# -- figures from a real Prometheus ---------------------------------------------------------------
def prom_value(prom: str, promql: str, at: float) -> float:
    result = httpx.get(f"{prom}/api/v1/query", params={"query": promql, "time": at}).json()["data"]["result"]
    return float(result[0]["value"][1]) if result else math.nan


def test_prometheus_figures_equal_promql(apps: Apps, tmp_path: Path) -> None:
    with prometheus(list(apps.urls.values()), tmp_path / "prom") as prom:
        count = "sum(fds_evaluation_duration_seconds_count)"
        apps.evaluate(0.03, FAST, "approve", "low")  # the series exist before the known load
        apps.evaluate(0.03, FAST, "hold", "high")
        shop = apps.urls["ecommerce"]
        # increase() misses the first value of a new series (PromQL semantics): every series exists first
        httpx.get(f"{shop}/v1/products"), httpx.get(f"{shop}/v1/boom"), httpx.post(f"{shop}/v1/orders")
        wait_for(lambda: prom_value(prom, count, time.time()) == 2, "first scrape")
        wait_for(lambda: prom_value(prom, "sum(ecommerce_http_requests_total)", time.time()) == 3, "shop scrape")
        apps.load()
        wait_for(lambda: prom_value(prom, count, time.time()) == 22, "scrape after the load")
        wait_for(lambda: prom_value(prom, "sum(ecommerce_http_requests_total)", time.time()) == 15, "shop load")
        f = collect(apps.urls, prom, "2m", trace_store=apps.store)
        at = f.evaluated_at
        own = prom_value(prom, "histogram_quantile(0.95, sum by (le) "
                               "(increase(fds_evaluation_duration_seconds_bucket[2m])))", at)
        cti = prom_value(prom, "histogram_quantile(0.95, sum by (le) "
                               "(increase(fds_engine_breakdown_seconds_bucket{engine='cti'}[2m])))", at)
    assert f.source == "prometheus" and f.targets == {"fds": True, "ecommerce": True}
    assert f.fds_p95 is not None and abs(f.fds_p95 - own) <= 1e-6 and 0.1 < f.fds_p95 <= 0.2
    assert f.engine_p95["cti"] is not None and abs(f.engine_p95["cti"] - cti) <= 1e-6
    assert f.fds_p50 is not None and f.fds_p50 < 0.05 and f.tps is not None and f.tps > 0
    assert f.error_share is not None and 0.05 < f.error_share < 0.15 and f.decisions["hold"] > 0
    assert f.checkouts_per_s is not None and f.checkouts_per_s > 0
    assert f.exemplars and f.exemplars[0].seconds == pytest.approx(0.15)
    assert f.exemplars[0].trace_id in apps.slow_traces and f.exemplars[0].timestamp is not None
    assert f.latency_series and any("P95" in values for _, values in f.latency_series)
    page = render_html(f)
    check_html(page)
    assert "<polyline" in page and "needs Prometheus" not in page


def test_unreachable_prometheus_falls_back_to_scrape(apps: Apps) -> None:
    apps.load()
    f = collect(apps.urls, "http://127.0.0.1:9", "5m", probe_seconds=0)
    assert f.source == "scrape" and "not reachable" in f.notes[0] and f.fds_p95 == pytest.approx(0.15)


def test_a_quality_gauge_reported_by_several_processes_is_their_max_not_their_mean() -> None:
    """Each FDS process holds a copy of the database's precision, refreshed on its own clock; the
    report reads them as the dashboards and alerts do (max), never as an average of copies."""
    import http.server
    import threading

    from shopfds.report.sources import ScrapeSource

    def serving(text: str) -> http.server.ThreadingHTTPServer:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/openmetrics-text; version=1.0.0")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    older = serving("# TYPE fds_precision gauge\nfds_precision 0.5\n# EOF\n")
    fresher = serving("# TYPE fds_precision gauge\nfds_precision 0.9\n# EOF\n")
    try:
        source = ScrapeSource({f"fds-{n}": f"http://127.0.0.1:{s.server_address[1]}"
                               for n, s in enumerate((older, fresher))}, probe_seconds=0)
        assert source.gauge("fds_precision") == 0.9
        assert source.gauge("fds_recall") is None
    finally:
        older.shutdown()
        fresher.shutdown()
