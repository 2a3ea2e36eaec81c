"""End-to-end checkout over HTTP at fixed offered rates, full telemetry against telemetry off.

    python -m bench.checkout [--rates 10,20,...,1000] [--backend embedded|postgres] [--duration S]
                             [--rounds R] [--shoppers N] [--profile-seconds S] [--json FILE]

Two copies of the shop run side by side as uvicorn processes on 127.0.0.1 (``shopfds.stack``,
embedded default: SQLite + in-process cache, payment latency 0): one with telemetry as shipped
(traces to the local store, metrics with exemplars, a real Prometheus scraping every second),
one with ``OTEL_SDK_DISABLED=true``. Each copy gets its own registered shoppers. For every rate
the load (``bench.load``, its own process) runs against both copies, R rounds in ABBA order so
drift favours neither. A checkout is ``POST /v1/cart/items`` then ``POST /v1/orders`` (which
calls the FDS); its rate is the TPS.

Per run: achieved TPS (completed checkouts per second), error rate, client-side P50/P95/P99 of
``POST /v1/orders`` (the ground truth), the FDS's own evaluation time and engine times read from
its evaluation rows (so they exist with telemetry off too), and, with telemetry on, the P95 that
Prometheus computes from our histograms over the same window (``histogram_quantile`` over
``increase``), with the bucket distance from the client-side P95. The rates stop climbing once
a rate is past the knee (achieved below 90 % of offered or errors above 1 %).

At the end: ``/metrics`` scrape time and size per service, spans exported per second and spans
dropped (self-metrics), RSS of every service, and, when ``py-spy`` is installed, a profile of
ecommerce and FDS at the highest sustained rate: where the CPU time goes, by package and by
function. Progress goes to stderr, tables to stdout. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.services import percentiles
from otel_setup.catalog import LATENCY_BUCKETS
from shopfds import procs
from shopfds.procs import ROOT, prometheus, prometheus_binary
from shopfds.stack import Stack, run_stack

ON, OFF = "telemetry", "disabled"
PG_SERVER = os.environ.get("SHOPFDS_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("SHOPFDS_BENCH_REDIS", "redis://127.0.0.1:6379/0")
KNEE_ACHIEVED = 0.90
KNEE_ERRORS = 0.01
FDS_P95_TARGET_MS, API_P95_TARGET_MS = 10.0, 50.0
err = Console(stderr=True)


def bucket_index(seconds: float, bounds: Sequence[float] = LATENCY_BUCKETS) -> int:
    """Index of the histogram bucket holding ``seconds`` (``len(bounds)`` for +Inf)."""
    return next((i for i, bound in enumerate(bounds) if seconds <= bound), len(bounds))


@dataclass
class Shop:
    mode: str
    stack: Stack
    postgres: str | None = None  # the copy's PostgreSQL database (None: the embedded SQLite files)
    shoppers: list[dict[str, str]] = field(default_factory=list)
    products: list[int] = field(default_factory=list)

    def _rows(self, query: str, *args: Any) -> list[Any]:
        if self.postgres is None:
            with sqlite3.connect(self.stack.workdir / "data" / "fds.db") as db:
                return db.execute(query.replace("$1", "?"), args).fetchall()

        async def fetch() -> list[Any]:
            import asyncpg

            conn = await asyncpg.connect(self.postgres)
            try:
                return [tuple(row) for row in await conn.fetch(query, *args)]
            finally:
                await conn.close()

        return asyncio.run(fetch())

    def last_evaluation_id(self) -> int:
        return int(self._rows("SELECT coalesce(max(id), 0) FROM fds_evaluations")[0][0])

    def evaluations_after(self, last_id: int) -> list[tuple[float, dict[str, Any]]]:
        rows = self._rows("SELECT duration_ms, engines FROM fds_evaluations WHERE id > $1", last_id)
        return [(float(duration), json.loads(engines) if isinstance(engines, str) else engines)
                for duration, engines in rows]


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A PostgreSQL database of its own on this machine's server, dropped afterwards."""
    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(f"{PG_SERVER}/postgres")
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def backend_env(backend: str, mode: str) -> Iterator[tuple[dict[str, str], str | None]]:
    """Settings of one copy of the shop: the embedded default, or a PostgreSQL database and a
    Redis key prefix of its own on this machine's servers (both removed afterwards)."""
    if backend == "embedded":
        yield {}, None
        return
    import redis

    with scratch_database(f"shopfds_bench_{mode}") as tag:
        dsn, prefix = f"{PG_SERVER}/{tag}", f"{tag}:"
        try:
            yield {"SHOPFDS_DATABASE_URL": dsn, "SHOPFDS_REDIS_URL": REDIS_URL, "SHOPFDS_CACHE_PREFIX": prefix}, dsn
        finally:
            client = redis.Redis.from_url(REDIS_URL)
            for key in client.scan_iter(f"{prefix}*", count=1000):
                client.delete(key)


async def _register(client: httpx.AsyncClient, count: int) -> list[dict[str, str]]:
    gate = asyncio.Semaphore(8)

    async def one(i: int) -> dict[str, str]:
        async with gate:
            email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
            password = "bench password 1"
            response = await client.post("/v1/auth/register", json={"email": email, "password": password, "name": "B"})
            response.raise_for_status()
            login = await client.post("/v1/auth/login", json={"email": email, "password": password})
            login.raise_for_status()
        # Each shopper has its own address and device, as real shoppers do; the load generator
        # stands in for the shop's reverse proxy (SHOPFDS_TRUSTED_PROXIES=127.0.0.1).
        return {"Authorization": f"Bearer {login.json()['access_token']}",
                "X-Device-Id": f"bench-{uuid.uuid4().hex[:12]}",
                "X-Forwarded-For": f"175.{i // 65025 % 256}.{i // 255 % 255}.{i % 255 + 1}"}

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def prepare(shop: Shop, shoppers: int) -> None:
    async with httpx.AsyncClient(base_url=shop.stack.urls["ecommerce"], timeout=60) as client:
        shop.shoppers = await _register(client, shoppers)
        page = (await client.get("/v1/products", params={"limit": 100})).json()["items"]
    # Everyday goods (no digital gift cards, nothing near the big-purchase rules' amounts), so
    # that the decisions are those of ordinary traffic.
    shop.products = [p["product_id"] for p in page if p["category"] != "digital" and p["price"] <= 200_000]


def run_load(shop: Shop, rate: float, duration: float, workdir: Path, seed: int) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    name = f"{shop.mode}-{rate:g}-{seed}"
    config, result = workdir / f"{name}.config.json", workdir / f"{name}.result.json"
    config.write_text(json.dumps({"url": shop.stack.urls["ecommerce"], "rate": rate, "duration": duration,
                                  "shoppers": shop.shoppers, "products": shop.products, "seed": seed}))
    last_id = shop.last_evaluation_id()
    cpu_before = {name: cpu_seconds(pid) for name, pid in shop.stack.pids.items()}
    subprocess.run([sys.executable, "-m", "bench.load", str(config), str(result)], cwd=ROOT, check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    raw = json.loads(result.read_text())
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in shop.stack.pids.items()}
    time.sleep(0.5)  # the FDS writes its evaluation rows behind, in batches (SHOPFDS_WRITE_INTERVAL_SECONDS)
    figures = summarize(raw, shop.evaluations_after(last_id))
    done = max(1, figures["order_ms"]["n"])
    figures["cpu_ms_per_checkout"] = {name: round(1000 * seconds / done, 1) for name, seconds in cpu.items()}
    return figures


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summarize(raw: dict[str, Any], evaluations: list[tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    records = raw["records"]
    outcomes = Counter(r["outcome"] for r in records)
    completed = [r for r in records if "order_ms" in r and not str(r["outcome"]).startswith(("http", "cart"))]
    failed = len(records) - len(completed)
    engines: dict[str, list[float]] = defaultdict(list)
    for _, report in evaluations:
        for engine, figures in report.items():
            engines[engine].append(float(figures["duration_ms"]))
    return {
        "offered_tps": raw["offered_tps"], "duration_s": raw["duration_s"],
        "achieved_tps": round(len(completed) / raw["elapsed_s"], 1),
        "error_rate": round(failed / max(1, len(records)), 4),
        "outcomes": dict(outcomes),
        "late_starts_over_10ms": sum(1 for r in records if r["late_ms"] > 10),
        "order_ms": percentiles([r["order_ms"] for r in completed]),
        "checkout_ms": percentiles([r["checkout_ms"] for r in completed]),
        "fds_ms": percentiles([duration for duration, _ in evaluations]),
        "engines_p95_ms": {name: percentiles(values)["p95"] for name, values in sorted(engines.items())},
        "wall_start": raw["wall_start"], "wall_end": raw["wall_end"],
    }


PROM_QUERIES = {
    "order": 'ecommerce_http_request_duration_seconds_bucket{method="POST",endpoint="/v1/orders"}',
    "fds": "fds_evaluation_duration_seconds_bucket",
}


def prometheus_p95(prom: str, start: float, end: float) -> dict[str, float | None]:
    """P95 that Prometheus computes over [start, end] (seconds), after its next scrape."""
    time.sleep(max(0.0, end + 2.0 - time.time()))
    window = max(1, round(end + 1.5 - (start - 0.5)))
    out: dict[str, float | None] = {}
    for name, selector in PROM_QUERIES.items():
        query = f"histogram_quantile(0.95, sum by (le) (increase({selector}[{window}s])))"
        result = httpx.get(f"{prom}/api/v1/query", params={"query": query, "time": end + 1.5}, timeout=10).json()
        values = result["data"]["result"]
        value = float(values[0]["value"][1]) if values else None
        out[name] = None if value is None or value != value else round(value * 1000, 2)
    return out


def attach_prometheus(figures: dict[str, Any], prom: str) -> None:
    p95 = prometheus_p95(prom, figures["wall_start"], figures["wall_end"])
    figures["prometheus_p95_ms"] = p95
    client, server = figures["order_ms"]["p95"], figures["fds_ms"]["p95"]
    figures["bucket_distance"] = {
        "order": None if p95["order"] is None else abs(bucket_index(client / 1000) - bucket_index(p95["order"] / 1000)),
        "fds": None if p95["fds"] is None else abs(bucket_index(server / 1000) - bucket_index(p95["fds"] / 1000)),
    }


def past_knee(figures: dict[str, Any]) -> bool:
    return bool(figures["achieved_tps"] < KNEE_ACHIEVED * figures["offered_tps"]
                or figures["error_rate"] > KNEE_ERRORS)


def scrape_cost(url: str, tries: int = 5) -> dict[str, float]:
    times, size = [], 0
    with httpx.Client(timeout=10) as client:
        for _ in range(tries):
            start = time.perf_counter()
            response = client.get(f"{url}/metrics", headers={"Accept": "application/openmetrics-text"})
            times.append((time.perf_counter() - start) * 1000)
            size = len(response.content)
    return {"scrape_ms": round(statistics.median(times), 2), "bytes": size}


def self_metric(url: str, name: str) -> float:
    """Sum of one counter's samples on a service's ``/metrics`` (0 when absent)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith((f"{name}{{", f"{name} ")))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def pipeline_cost(shops: dict[str, Shop], loaded_s: float, spans_before: dict[str, float]) -> dict[str, Any]:
    on = shops[ON].stack
    return {
        "scrape": {name: scrape_cost(url) for name, url in on.urls.items()},
        "spans_exported_per_s": {name: round((self_metric(url, "otel_setup_spans_exported_total")
                                              - spans_before[name]) / max(loaded_s, 1e-9), 1)
                                 for name, url in on.urls.items()},
        "spans_dropped": {name: self_metric(url, "otel_setup_spans_dropped_total") for name, url in on.urls.items()},
        "rss_mb": {mode: {name: rss_mb(pid) for name, pid in shop.stack.pids.items()} for mode, shop in shops.items()},
    }


# -- profile ----------------------------------------------------------------------------------

TELEMETRY = frozenset({"opentelemetry", "otel_setup", "sentry_sdk"})


def _package(frame: str) -> str | None:
    """Top-level package of a py-spy frame ``function (path:line)``; None for the standard library."""
    path = frame.rsplit(" (", 1)[-1].rsplit(":", 1)[0]
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    for root in {str(ROOT), str(procs.SERVICE_ROOT)}:  # this checkout, or the commit bench.before_after runs
        if path.startswith(root + "/"):
            return path[len(root) + 1:].split("/", 1)[0]
    return None


def summarize_profile(collapsed: str, top: int = 12) -> dict[str, Any]:
    """CPU samples (GIL held) by package and by function from py-spy's collapsed stacks. A sample
    belongs to the innermost frame that is not the standard library, so ``json.dumps`` called by
    the trace store counts for ``otel_setup`` and the event loop's own work for ``stdlib``."""
    packages: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count, frames = int(count_text), stack.split(";")
        total += count
        owner = next(((package, frame) for frame in reversed(frames) if (package := _package(frame))), None)
        package, frame = owner or ("stdlib", frames[-1])
        if frame.startswith("asyncio_run "):  # uvicorn's frame above the loop: the loop's own work
            package = "stdlib"
        packages[package] += count
        functions[f"{frame.split(' (')[0]} [{package}]"] += count
    share = (lambda n: round(100 * n / total, 1)) if total else (lambda n: 0.0)
    return {"samples": total, "telemetry_pct": share(sum(packages[p] for p in TELEMETRY)),
            "packages_pct": {name: share(n) for name, n in packages.most_common()},
            "functions_self_pct": {name: share(n) for name, n in functions.most_common(top)}}


def profile(shop: Shop, rate: float, duration: float, workdir: Path) -> dict[str, Any] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        err.print("py-spy not installed: no profile")
        return None
    outputs = {name: workdir / f"profile-{name}.txt" for name in ("ecommerce", "fds")}
    with ExitStack() as stack:
        procs = [stack.enter_context(subprocess.Popen(
            [spy, "record", "--pid", str(shop.stack.pids[name]), "--format", "raw", "--rate", "250", "--gil",
             "--full-filenames",
             "--duration", str(int(duration) + 1), "--output", str(path), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)) for name, path in outputs.items()]
        time.sleep(0.5)
        run_load(shop, rate, duration, workdir, seed=999)
        for proc in procs:
            proc.wait(timeout=duration + 30)
    return {name: summarize_profile(path.read_text()) for name, path in outputs.items() if path.exists()}


# -- run --------------------------------------------------------------------------------------

def rounds_order(rounds: int) -> Iterator[str]:
    for r in range(rounds):
        yield from ((ON, OFF) if r % 2 == 0 else (OFF, ON))


def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    base = {"SHOPFDS_PAYMENT_LATENCY_MS": "0"}
    with ExitStack() as stack:
        shops = {}
        for mode, extra in ((ON, {}), (OFF, {"OTEL_SDK_DISABLED": "true"})):
            env, dsn = stack.enter_context(backend_env(args.backend, mode))
            shops[mode] = Shop(mode, stack.enter_context(run_stack(workdir / mode, env={**base, **extra, **env})), dsn)
        prom = (stack.enter_context(prometheus(list(shops[ON].stack.urls.values()), workdir / "prometheus"))
                if prometheus_binary() else None)
        if prom is None:
            err.print("prometheus not installed: no Prometheus P95 (make prometheus installs it)")
        for shop in shops.values():
            err.print(f"{shop.mode}: registering {args.shoppers} shoppers")
            asyncio.run(prepare(shop, args.shoppers))
            run_load(shop, min(args.rates[0], 50.0), min(3.0, args.duration), workdir / "load", seed=0)  # warm-up
        spans_before = {name: self_metric(url, "otel_setup_spans_exported_total")
                        for name, url in shops[ON].stack.urls.items()}
        runs: list[dict[str, Any]] = []
        loaded = 0.0
        sustained: float | None = None
        for rate in args.rates:
            for i, mode in enumerate(rounds_order(args.rounds)):
                err.print(f"{mode}: {rate:g} checkouts/s offered for {args.duration:g}s (round {i // 2 + 1})")
                figures = run_load(shops[mode], rate, args.duration, workdir / "load", seed=len(runs))
                if mode == ON:
                    loaded += figures["wall_end"] - figures["wall_start"]
                    if prom:
                        attach_prometheus(figures, prom)
                runs.append({"mode": mode, **figures})
                err.print(f"  achieved {figures['achieved_tps']}/s, errors {figures['error_rate']:.2%}, "
                          f"order P95 {figures['order_ms']['p95']} ms, FDS P95 {figures['fds_ms']['p95']} ms")
                time.sleep(1.0)
            on_runs = [r for r in runs if r["mode"] == ON and r["offered_tps"] == rate]
            if any(past_knee(r) for r in on_runs):
                break
            sustained = rate
        pipeline = pipeline_cost(shops, loaded, spans_before)
        profiled = None
        if args.profile_seconds > 0:
            rate = sustained or args.rates[0]
            err.print(f"profiling ecommerce and FDS at {rate:g} checkouts/s for {args.profile_seconds:g}s (py-spy)")
            profiled = profile(shops[ON], rate, args.profile_seconds, workdir / "profile")
    return {"backend": args.backend, "runs": runs, "sustained_tps": sustained, "pipeline": pipeline,
            "profile": profiled,
            "profile_rate": sustained or args.rates[0]}


def paired(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per rate: medians over rounds for each mode and the throughput ratio on/off."""
    out = []
    for rate in dict.fromkeys(r["offered_tps"] for r in runs):
        by_mode = {mode: [r for r in runs if r["offered_tps"] == rate and r["mode"] == mode] for mode in (ON, OFF)}
        if not all(by_mode.values()):
            continue
        row: dict[str, Any] = {"offered_tps": rate}
        for mode, items in by_mode.items():
            row[mode] = {key: statistics.median(r[key] for r in items) for key in ("achieved_tps", "error_rate")}
            for key in ("order_ms", "fds_ms"):
                row[mode][key] = {q: statistics.median(r[key][q] for r in items) for q in ("p50", "p95", "p99")}
            row[mode]["cpu_ms_per_checkout"] = {
                name: statistics.median(r["cpu_ms_per_checkout"][name] for r in items)
                for name in items[0]["cpu_ms_per_checkout"]}
            row[mode]["engines_p95_ms"] = {
                name: statistics.median(r["engines_p95_ms"].get(name, float("nan")) for r in items)
                for name in items[0]["engines_p95_ms"]}
        pairs = list(zip(by_mode[ON], by_mode[OFF], strict=False))  # ABBA: equal counts
        row["throughput_ratio"] = round(statistics.median(a["achieved_tps"] / max(b["achieved_tps"], 1e-9)
                                                          for a, b in pairs), 3)
        proms = [r for r in by_mode[ON] if r.get("prometheus_p95_ms")]
        if proms:
            row["prometheus"] = {
                "order_p95_ms": statistics.median(r["prometheus_p95_ms"]["order"] or float("nan") for r in proms),
                "fds_p95_ms": statistics.median(r["prometheus_p95_ms"]["fds"] or float("nan") for r in proms),
                "max_bucket_distance": max(max(v for v in r["bucket_distance"].values() if v is not None)
                                           for r in proms)}
        out.append(row)
    return out


def cpu_cell(figures: dict[str, Any]) -> str:
    cpu = figures.get("cpu_ms_per_checkout", {})
    return f"{cpu.get('ecommerce', float('nan')):.1f} / {cpu.get('fds', float('nan')):.1f}"


def tables(result: dict[str, Any]) -> list[Table]:
    latency = Table(title="Checkout over HTTP: medians of the rounds (client side; FDS from its own rows)")
    for column in ("offered/s", "mode", "achieved/s", "errors", "order P50", "order P95", "order P99",
                   "FDS P50", "FDS P95", "FDS P99", "rule/ml/cti P95", "CPU ms/checkout ecommerce/fds"):
        latency.add_column(column, justify="right")
    compare = Table(title="Telemetry on against off, and Prometheus against the client (ms)")
    for column in ("offered/s", "throughput on/off", "order P95 client", "order P95 Prometheus",
                   "FDS P95 rows", "FDS P95 Prometheus", "max bucket distance"):
        compare.add_column(column, justify="right")
    for row in result["paired"]:
        for mode in (ON, OFF):
            m = row[mode]
            engines = "/".join(f"{m['engines_p95_ms'].get(e, float('nan')):.2f}" for e in ("rule", "ml", "cti"))
            latency.add_row(f"{row['offered_tps']:g}", mode, f"{m['achieved_tps']:.1f}", f"{m['error_rate']:.2%}",
                            *(f"{m['order_ms'][q]:.1f}" for q in ("p50", "p95", "p99")),
                            *(f"{m['fds_ms'][q]:.2f}" for q in ("p50", "p95", "p99")), engines, cpu_cell(m))
        prom = row.get("prometheus", {})
        compare.add_row(f"{row['offered_tps']:g}", f"{row['throughput_ratio']:.3f}",
                        f"{row[ON]['order_ms']['p95']:.1f}", f"{prom.get('order_p95_ms', float('nan')):.1f}",
                        f"{row[ON]['fds_ms']['p95']:.2f}", f"{prom.get('fds_p95_ms', float('nan')):.2f}",
                        str(prom.get("max_bucket_distance", "-")))
    pipeline = Table(title="Telemetry pipeline after the run (telemetry-on copy; RSS of both)")
    for column in ("service", "/metrics ms", "/metrics KiB", "spans/s", "spans dropped", "RSS on MiB", "RSS off MiB"):
        pipeline.add_column(column, justify="right")
    p = result["pipeline"]
    for name in p["scrape"]:
        pipeline.add_row(name, f"{p['scrape'][name]['scrape_ms']:.1f}", f"{p['scrape'][name]['bytes'] / 1024:.0f}",
                         f"{p['spans_exported_per_s'][name]:.0f}", f"{p['spans_dropped'][name]:.0f}",
                         f"{p['rss_mb'][ON].get(name, float('nan')):.0f}",
                         f"{p['rss_mb'][OFF].get(name, float('nan')):.0f}")
    out = [latency, compare, pipeline]
    for service, prof in (result.get("profile") or {}).items():
        table = Table(title=f"Where {service}'s Python CPU goes at {result['profile_rate']:g} checkouts/s "
                            f"(py-spy --gil, {prof['samples']} samples; telemetry {prof['telemetry_pct']}%)")
        table.add_column("package")
        table.add_column("%", justify="right")
        table.add_column("function (self)")
        table.add_column("%", justify="right")
        packages = list(prof["packages_pct"].items())[:12]
        functions = list(prof["functions_self_pct"].items())
        for i in range(max(len(packages), len(functions))):
            pk, pv = packages[i] if i < len(packages) else ("", "")
            fk, fv = functions[i] if i < len(functions) else ("", "")
            table.add_row(pk, str(pv), fk, str(fv))
        out.append(table)
    return out


def rates(text: str) -> list[float]:
    values = [float(v) for v in text.split(",") if v.strip()]
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError("rates are positive numbers, comma-separated")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.checkout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=rates, default=rates("10,20,30,40,60,100,250,500,1000"),
                        help="checkouts per second offered, climbing until one is past the knee")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of load per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs per mode and rate (ABBA order)")
    parser.add_argument("--shoppers", type=int, default=300)
    parser.add_argument("--backend", choices=("embedded", "postgres"), default="embedded",
                        help="embedded: SQLite + in-process cache (the default); postgres: PostgreSQL + Redis "
                             "on this machine (SHOPFDS_BENCH_POSTGRES, SHOPFDS_BENCH_REDIS)")
    parser.add_argument("--profile-seconds", type=float, default=8.0, help="0: no profile")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.rounds < 1 or args.shoppers < 1 or args.profile_seconds < 0:
        parser.error("duration, rounds and shoppers must be positive")
    with tempfile.TemporaryDirectory(prefix="shopfds-bench-checkout-") as tmp:
        result = bench(args, Path(tmp))
    result["paired"] = paired(result["runs"])
    result["machine"] = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    result["command"] = " ".join(["python -m bench.checkout", *(argv if argv is not None else sys.argv[1:])])
    console = Console(width=max(Console().width, 160))  # the tables need the room, also when piped
    for table in tables(result):
        console.print(table)
    console.print(f"sustained (achieved >= {KNEE_ACHIEVED:.0%} of offered, errors <= {KNEE_ERRORS:.0%}): "
                  f"{result['sustained_tps'] or 'none of the rates'} checkouts/s; targets: FDS P95 <= "
                  f"{FDS_P95_TARGET_MS:g} ms and API P95 <= {API_P95_TARGET_MS:g} ms at 500/s, 1000/s sustained, "
                  f"throughput on/off >= 0.9, Prometheus P95 within one bucket")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
