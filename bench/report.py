"""Write ``BENCHMARKS.md`` from the JSON figures ``make bench`` leaves in a results directory.

    python -m bench.report RESULTS_DIR OUTPUT.md

Reads ``telemetry_cost.json`` (``bench.telemetry_cost``), ``services.json`` (``bench.services``),
``checkout.json`` and ``checkout_postgres.json`` (``bench.checkout`` on the embedded default and on
PostgreSQL + Redis); a missing file is reported as not run. Every figure
in the output comes from those files; the targets are the issue's, each marked met or not.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.checkout import API_P95_TARGET_MS, FDS_P95_TARGET_MS, OFF, ON, cpu_cell

FILES = {"telemetry_cost": "telemetry_cost.json", "checkout": "checkout.json",
         "checkout_postgres": "checkout_postgres.json", "services": "services.json",
         "backends_down": "backends_down.json"}
COMMANDS = {"telemetry_cost": "python -m bench.telemetry_cost", "services": "python -m bench.services",
            "checkout": "python -m bench.checkout", "checkout_postgres": "python -m bench.checkout --backend postgres",
            "backends_down": "python -m bench.backends_down"}


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**not met**")


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else "?"
    mem = next((int(line.split()[1]) // 1024 // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0) if Path("/proc/meminfo").exists() else 0
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=False).stdout.strip()
    except OSError:
        commit = "?"
    return (f"{cpu}, {os.cpu_count()} CPUs, {mem} GiB; {platform.platform()}; Python {platform.python_version()}; "
            f"commit {commit or '?'}; written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


def telemetry_cost_section(cost: dict[str, Any]) -> str:
    rows = [(name, f"{v['median_us']:.1f}", "-" if name == "bare" else f"{v['added_us']:+.1f}",
             f"{v['spans_stored_per_request']:.2f}") for name, v in cost["variants"].items()]
    ratio = cost.get("ratio")
    return "\n\n".join([
        "## Telemetry cost per request (in-process ASGI call)",
        f"{cost['runs']} runs of {cost['requests_per_run']} requests per variant, each variant in its own "
        f"subprocess, order reversed every other pass. Versions: "
        + ", ".join(f"{k} {v}" for k, v in cost["packages"].items() if v) + ".",
        _table(("variant", "µs/request (median)", "added µs vs bare", "spans stored/request"), rows),
        f"- otel_setup's added cost / contrib+Sentry defaults' added cost = "
        f"**{'n/a' if ratio is None else f'{ratio:.2f}'}** (target ≤ {cost['ratio_target']:.2f}: "
        f"{_met(None if ratio is None else ratio <= cost['ratio_target'])})",
        f"- `OTEL_SDK_DISABLED=true` adds {cost['disabled_added_us']:+.1f} µs/request "
        f"({cost['disabled_added_pct_of_bare']:+.1f} % of bare).",
    ])


def services_section(services: dict[str, Any]) -> str:
    inproc, http = services["in_process"], services["over_http"]
    rows = [("FDS evaluate, in-process", inproc["evaluate_ms"])]
    rows += [(f"engine {name} (reported)", p) for name, p in inproc["engines_ms"].items()]
    rows += [(f"FDS evaluate over HTTP at {http['fds']['offered_tps']:g}/s offered", http["fds"]["evaluate_ms"]),
             ("checkout `POST /v1/orders`, one at a time", http["checkout_ms"])]
    p95 = http["fds"]["evaluate_ms"]["p95"]
    return "\n\n".join([
        "## FDS evaluation, in-process and over HTTP",
        _table(("measurement", "n", "P50 ms", "P95 ms", "P99 ms"),
               [(name, p["n"], f"{p['p50']:.2f}", f"{p['p95']:.2f}", f"{p['p99']:.2f}") for name, p in rows]),
        f"- FDS over HTTP P95 {p95:.2f} ms at {http['fds']['offered_tps']:g}/s (target ≤ {FDS_P95_TARGET_MS:g} ms: "
        f"{_met(p95 <= FDS_P95_TARGET_MS)}); achieved {http['fds']['achieved_tps']}/s, "
        f"errors {http['fds']['errors'] or 'none'}.",
    ])


def checkout_section(checkout: dict[str, Any]) -> str:
    latency, compare = [], []
    for row in checkout["paired"]:
        for mode in (ON, OFF):
            m = row[mode]
            engines = " / ".join(f"{m['engines_p95_ms'].get(e, float('nan')):.2f}" for e in ("rule", "ml", "cti"))
            latency.append((f"{row['offered_tps']:g}", mode, f"{m['achieved_tps']:.1f}", f"{m['error_rate']:.2%}",
                            *(f"{m['order_ms'][q]:.1f}" for q in ("p50", "p95", "p99")),
                            *(f"{m['fds_ms'][q]:.2f}" for q in ("p50", "p95", "p99")), engines, cpu_cell(m)))
        prom = row.get("prometheus", {})
        compare.append((f"{row['offered_tps']:g}", f"{row['throughput_ratio']:.3f}",
                        f"{row[ON]['order_ms']['p95']:.1f}", f"{prom.get('order_p95_ms', float('nan')):.1f}",
                        f"{row[ON]['fds_ms']['p95']:.2f}", f"{prom.get('fds_p95_ms', float('nan')):.2f}",
                        prom.get("max_bucket_distance", "-")))
    pipeline = checkout["pipeline"]
    scrape = pipeline["scrape"]
    pipe_rows = [(name, f"{scrape[name]['scrape_ms']:.1f}", f"{scrape[name]['bytes'] / 1024:.0f}",
                  f"{pipeline['spans_exported_per_s'][name]:.0f}", f"{pipeline['spans_dropped'][name]:.0f}",
                  f"{pipeline['rss_mb'][ON].get(name, float('nan')):.0f}",
                  f"{pipeline['rss_mb'][OFF].get(name, float('nan')):.0f}") for name in pipeline["scrape"]]
    sustained = checkout.get("sustained_tps")
    at500 = next((r for r in checkout["paired"] if r["offered_tps"] == 500), None)
    ratios = [r["throughput_ratio"] for r in checkout["paired"]]
    distances = [r["prometheus"]["max_bucket_distance"] for r in checkout["paired"] if "prometheus" in r]
    targets = [
        f"- sustained 1000 checkouts/s with errors < 0.1 %: {_met(bool(sustained and sustained >= 1000))} "
        f"(highest sustained rate: {sustained or 'none of the rates'} /s)",
        f"- FDS P95 ≤ {FDS_P95_TARGET_MS:g} ms and API P95 ≤ {API_P95_TARGET_MS:g} ms at 500/s: "
        + (_met(at500[ON]['fds_ms']['p95'] <= FDS_P95_TARGET_MS and at500[ON]['order_ms']['p95'] <= API_P95_TARGET_MS
                and at500[ON]['achieved_tps'] >= 450) if at500 else "**not met** (500/s was past the knee, not run)"),
        f"- throughput with telemetry ≥ 90 % of telemetry off at the same offered rate: "
        f"{_met(bool(ratios) and min(ratios) >= 0.9)} (ratios {', '.join(f'{r:.3f}' for r in ratios)})",
        f"- Prometheus P95 within one bucket of the client's: {_met(bool(distances) and max(distances) <= 1)} "
        f"(bucket distances {distances})",
    ]
    backend = {"embedded": "embedded default: SQLite + in-process cache",
               "postgres": "PostgreSQL + Redis"}[checkout.get("backend", "embedded")]
    sections = [
        f"## Checkout end to end over HTTP, telemetry on against off ({backend})",
        "Medians of the ABBA rounds. `order` is the client-side time of `POST /v1/orders` (the ground "
        "truth); `FDS` is the FDS's own evaluation time from its evaluation rows (present with telemetry "
        "off too); engines are their P95; CPU is each process's user + system time over the run divided by "
        "the completed checkouts.",
        _table(("offered/s", "mode", "achieved/s", "errors", "order P50", "order P95", "order P99", "FDS P50",
                "FDS P95", "FDS P99", "rule / ml / cti P95", "CPU ms per checkout, ecommerce / fds"), latency),
        _table(("offered/s", "throughput on/off", "order P95 client", "order P95 Prometheus", "FDS P95 rows",
                "FDS P95 Prometheus", "bucket distance (max)"), compare),
        "Targets:\n" + "\n".join(targets),
        f"### Telemetry pipeline cost after that run ({backend})",
        _table(("service", "/metrics ms", "/metrics KiB", "spans/s exported", "spans dropped", "RSS on MiB",
                "RSS off MiB"), pipe_rows),
    ]
    for service, prof in (checkout.get("profile") or {}).items():
        packages = list(prof["packages_pct"].items())[:10]
        functions = list(prof["functions_self_pct"].items())[:10]
        rows = [(packages[i][0] if i < len(packages) else "", packages[i][1] if i < len(packages) else "",
                 f"`{functions[i][0]}`" if i < len(functions) else "", functions[i][1] if i < len(functions) else "")
                for i in range(max(len(packages), len(functions)))]
        sections += [f"### Where {service}'s Python CPU goes at {checkout['profile_rate']:g} checkouts/s "
                     f"(py-spy --gil, {prof['samples']} samples; telemetry packages {prof['telemetry_pct']} %)",
                     _table(("package", "%", "function (self)", "%"), rows)]
    return "\n\n".join(sections)


def backends_down_section(down: dict[str, Any]) -> str:
    """FDS saturated with telemetry backends healthy vs down (``bench.backends_down``)."""
    rows = []
    for mode in ("healthy", "down"):
        runs = [r for r in down["runs"] if r["mode"] == mode]
        rows.append((mode, f"{down['median_rps'][mode]:.0f}", " ".join(f"{r['rps']:.0f}" for r in runs),
                     f"{down.get('median_cpu_ms_per_request', {}).get(mode, 0.0):.2f}",
                     sum(r["non_2xx"] + r["socket_errors"] for r in runs),
                     max(r["shutdown_s"] for r in runs)))
    losses = next((r["losses"] for r in down["runs"] if r["mode"] == "down"), {})
    return "\n\n".join([
        "## Telemetry backends down at saturation",
        f"FDS saturated by `wrk -c{down['connections']}`, {down['rounds']} ABBA rounds of {down['duration_s']:.0f} s "
        f"runs; down = refused OTLP endpoint and Sentry DSN. Load average at the end: "
        f"{down.get('load_average', 0.0):.1f}.",
        _table(("backends", "median req/s", "runs req/s", "CPU ms/request", "errors", "max shutdown s"), rows),
        f"Down / healthy throughput: **{down['ratio']:.3f}** (target >= {down['target']}: {_met(down['met'])}). "
        "Losses the down process counted: " + ", ".join(f"`{k}` {v:.0f}" for k, v in losses.items()) + "."])


def render(results: dict[str, dict[str, Any]], notes: str = "") -> str:
    parts = ["# Benchmarks", "Written by `make bench` (`python -m bench.report`) from the figures of this run; "
             "nothing here is typed by hand except the notes at the end.",
             f"Machine: {_machine()}.",
             "Commands: " + "; ".join(f"`{results[name].get('command', COMMANDS[name])}`" if name in results
                                      else f"`{COMMANDS[name]}` (not run)" for name in FILES) + "."]
    if "telemetry_cost" in results:
        parts.append(telemetry_cost_section(results["telemetry_cost"]))
    parts += [checkout_section(results[name]) for name in ("checkout", "checkout_postgres") if name in results]
    if "services" in results:
        parts.append(services_section(results["services"]))
    if "backends_down" in results:
        parts.append(backends_down_section(results["backends_down"]))
    if notes:
        parts.append(notes)
    return "\n\n".join(parts) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python -m bench.report RESULTS_DIR OUTPUT.md [NOTES.md]", file=sys.stderr)
        return 2
    results_dir, output = Path(argv[0]), Path(argv[1])
    results = {name: json.loads((results_dir / file).read_text()) for name, file in FILES.items()
               if (results_dir / file).exists()}
    if not results:
        print(f"no results in {results_dir}: run `make bench`", file=sys.stderr)
        return 1
    notes = Path(argv[2]).read_text() if len(argv) == 3 and Path(argv[2]).exists() else ""
    output.write_text(render(results, notes))
    print(f"wrote {output} from {', '.join(sorted(results))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
