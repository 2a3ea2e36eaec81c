"""Write ``BENCHMARKS.md`` from the JSON figures ``make bench`` leaves in a results directory.

    python -m bench.report RESULTS_DIR OUTPUT.md

Reads ``saturation.json`` (``bench.saturation``: the FDS at saturation, closed loop) and, when
present, ``checkout_saturation.json`` (``bench.checkout_saturation``: the checkout flow at saturation),
whose on/off ratios open the document side by side; ``telemetry_cost.json``
(``bench.telemetry_cost``), ``services.json`` (``bench.services``),
``checkout.json`` and ``checkout_postgres.json`` (``bench.checkout`` on the embedded default and on
PostgreSQL + Redis), ``workers.json`` (``bench.workers``), ``accuracy.json`` (``bench.accuracy``); a
missing file is reported as not run. Every figure
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

FILES = {"saturation": "saturation.json", "telemetry_cost": "telemetry_cost.json", "checkout": "checkout.json",
         "checkout_postgres": "checkout_postgres.json", "services": "services.json",
         "checkout_saturation": "checkout_saturation.json", "workers": "workers.json",
         "accuracy": "accuracy.json", "backends_down": "backends_down.json", "before_after": "before_after.json"}
COMMANDS = {"saturation": "python -m bench.saturation",
            "telemetry_cost": "python -m bench.telemetry_cost", "services": "python -m bench.services",
            "checkout": "python -m bench.checkout", "checkout_postgres": "python -m bench.checkout --backend postgres",
            "checkout_saturation": "python -m bench.checkout_saturation", "workers": "python -m bench.workers",
            "accuracy": "python -m bench.accuracy", "backends_down": "python -m bench.backends_down",
            "before_after": "python -m bench.before_after"}


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


SATURATION_MODES = ("development", "production")


def _checkout_rows(checkout: dict[str, Any] | None) -> list[tuple[str, dict[str, tuple[float, float, float | None]]]]:
    """(flow, {defaults: (on/s, off/s, ratio)}) per backend of ``bench.checkout_saturation``."""
    rows: dict[str, dict[str, tuple[float, float, float | None]]] = {}
    for c in (checkout or {}).get("configurations", []):
        rows.setdefault(f"checkout, {c['backend']}", {})[c["environment"]] = (c[ON]["tps"], c[OFF]["tps"], c["ratio"])
    return list(rows.items())


def saturation_section(fds: dict[str, Any] | None, checkout: dict[str, Any] | None) -> str:
    """The issue's first target, first: throughput with full telemetry over telemetry off at saturation,
    development and production defaults side by side, for the FDS and the checkout flow."""
    flows: list[tuple[str, dict[str, tuple[float, float, float | None]]]] = []
    if fds is not None:
        off = fds["modes"]["disabled"]["evaluations_per_s"]
        flows.append(("FDS evaluate", {mode: (m["evaluations_per_s"], off, m["ratio"])
                                       for mode, m in fds["modes"].items() if mode in SATURATION_MODES}))
    flows += _checkout_rows(checkout)
    rows = []
    for flow, by_mode in flows:
        cells: list[str] = []
        for mode in SATURATION_MODES:
            on, off, ratio = by_mode.get(mode, (float("nan"), float("nan"), None))
            cells += [f"{on:.0f}", f"{off:.0f}", "-" if ratio is None else f"**{ratio:.2f}**"]
        ratios = [r for _, _, r in by_mode.values() if r is not None]
        rows.append((flow, *cells,
                     _met(len(ratios) == len(SATURATION_MODES) and min(ratios) >= 0.90)))
    if fds is None:
        rows.insert(0, ("FDS evaluate (`bench.saturation`)", *["not run"] * 6, "n/a"))
    if checkout is None:
        rows.append(("checkout (`bench.checkout_saturation`)", *["not run"] * 6, "n/a"))
    parts = ["## Saturation: full telemetry against telemetry off",
             "Closed loop, enough connections to keep the service busy, the same duration per run, medians of ABBA "
             "rounds in one run; throughput per second. Target: on/off ≥ 0.90 with development defaults (100 % "
             "sampling, local trace store) and with production defaults (10 % sampling).",
             _table(("flow", "development: on/s", "off/s", "on/off", "production: on/s", "off/s", "on/off",
                     "≥ 0.90 both"), rows)]
    if fds is not None:
        parts.append(fds_targets(fds))
    return "\n\n".join(parts)


def fds_targets(fds: dict[str, Any]) -> str:
    t, dev, off = fds["targets"], fds["modes"]["development"], fds["modes"]["disabled"]
    rate = fds.get("fixed_rate", {}).get("development")
    spread = "; ".join(f"{mode} {m['min']:.0f}-{m['max']:.0f}/s" for mode, m in fds["modes"].items())
    paired = "; ".join(f"{mode} {', '.join(f'{p:.2f}' for p in m['paired_ratios'])}"
                       for mode, m in fds["modes"].items() if "paired_ratios" in m)
    lines = [
        f"- FDS ≥ {t['evaluations_per_s']:g} evaluations/s with full telemetry ({fds['workers']} worker(s), wrk "
        f"-t{fds['threads']} -c{fds['connections']} on the same machine): "
        f"{_met(dev['evaluations_per_s'] >= t['evaluations_per_s'])} "
        f"({dev['evaluations_per_s']:.0f}/s; telemetry off {off['evaluations_per_s']:.0f}/s)",
        f"- FDS CPU per evaluation with telemetry ≤ {t['cpu_ms_per_evaluation']:g} ms: "
        f"{_met(dev['cpu_ms_per_evaluation']['fds'] <= t['cpu_ms_per_evaluation'])} "
        f"({dev['cpu_ms_per_evaluation']['fds']:.2f} ms; off {off['cpu_ms_per_evaluation']['fds']:.2f} ms; "
        f"wrk {dev['cpu_ms_per_evaluation']['wrk']:.2f} ms)",
    ]
    if rate is not None:
        ok = (rate["latency_ms"]["p95"] <= t["p95_ms"] and not rate["errors"]
              and rate["achieved_tps"] >= 0.95 * rate["offered_tps"])
        lines.append(f"- FDS P95 ≤ {t['p95_ms']:g} ms at {rate['offered_tps']:g}/s offered (open loop, from when each "
                     f"request was due), no errors: {_met(ok)} (P95 {rate['latency_ms']['p95']:.1f} ms, achieved "
                     f"{rate['achieved_tps']:g}/s, errors {sum(rate['errors'].values())})")
    lines.append(f"- spread of the runs: {spread}; paired on/off ratios per round: {paired}")
    return "FDS targets (`bench.saturation`, development defaults):\n" + "\n".join(lines)


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
        *_breakdown(cost),
    ])


def _breakdown(cost: dict[str, Any]) -> list[str]:
    added = cost["variants"]["otel_setup"]["added_us"]
    target = cost.get("added_target_us", 100.0)
    head = (f"- otel_setup adds **{added:+.1f} µs** per request (target ≤ {target:.0f} µs: {_met(added <= target)}).")
    if "breakdown" not in cost:
        return [head]
    rows = [(r["step"], f"{r['median_us']:.1f}", f"{r['component_us']:+.1f}") for r in cost["breakdown"]]
    return [head, "Per component, on an FDS-shaped app (server span, four engine spans per request): each step adds "
                  "one component to the step above it; CPU µs of the process (export threads included).",
            _table(("step", "µs/request", "component µs"), rows)]


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


def workers_section(workers: dict[str, Any]) -> str:
    """Throughput with 1 and 2 processes per service (``bench.workers``), with the CPU of each side."""
    rows = [(r["workers"], r["kind"], r["per_s"], r["rows"], r["seconds"], r["services_cpu_s"], r["wrk_cpu_s"],
             r.get("load_1m", "n/a")) for r in workers["rows"]]
    best = max((r["per_s"] for r in workers["rows"] if r["kind"] == "fds"), default=None)
    met = _met(best is not None and best >= 1000)
    target = f"FDS evaluations/s, best of the worker counts: {best} (target 1000): {met}"
    return "\n\n".join([
        "## Workers: 1 and 2 processes per service (PostgreSQL + Redis, telemetry on)",
        f"wrk closed loop, {workers['connections']} connections, {workers['duration_s']:.0f} s each, on "
        f"{workers['cpus']} CPUs shared with wrk; throughput from the rows written to the database.",
        _table(("workers", "load", "per s", "rows", "s", "services CPU s", "wrk CPU s", "host load 1m"), rows),
        target])


def checkout_saturation_section(saturation: dict[str, Any]) -> str:
    """The checkout flow at saturation (``bench.checkout_saturation``): throughput on/off, CPU per checkout."""
    targets, rows = saturation["targets"], []
    for c in saturation["configurations"]:
        for mode in (ON, OFF):
            m, cpu = c[mode], c[mode]["cpu_ms_per_checkout"]
            rows.append((c["backend"], c["environment"], mode, f"{m['tps']:.1f}",
                         f"{m['tps_spread'][0]:.1f}-{m['tps_spread'][1]:.1f}", f"{m['error_rate']:.2%}",
                         f"{m['checkout_p95_ms']:.0f}", " / ".join(f"{cpu.get(s, float('nan')):.1f}"
                                                              for s in ("ecommerce", "fds", "ml")),
                         f"{c['ratio']:.2f}" if mode == ON and c["ratio"] is not None else ""))
    confs = saturation["configurations"]
    ratios = [c["ratio"] for c in confs if c["ratio"] is not None]
    cpu_on = [c[ON]["cpu_ms_per_checkout"]["ecommerce"] for c in confs]
    pg = [c[ON] for c in confs if c["backend"] == "postgres"]
    lines = [
        f"- checkout throughput with telemetry ≥ {targets['ratio']:.0%} of off at saturation, every configuration: "
        f"{_met(bool(ratios) and min(ratios) >= targets['ratio'])} (ratios {', '.join(f'{r:.2f}' for r in ratios)})",
        f"- ecommerce CPU per checkout with telemetry ≤ {targets['ecommerce_cpu_ms']:g} ms: "
        f"{_met(bool(cpu_on) and max(cpu_on) <= targets['ecommerce_cpu_ms'])} "
        f"({', '.join(f'{v:.1f}' for v in cpu_on)} ms)",
        f"- ≥ {targets['postgres_tps']:g} checkouts/s on PostgreSQL + Redis, errors < {targets['error_rate']:.1%}: "
        + (_met(all(m["tps"] >= targets["postgres_tps"] and m["error_rate"] < targets["error_rate"] for m in pg))
           + " (" + ", ".join(f"{m['tps']:.1f}/s" for m in pg) + ")" if pg else "n/a (not run)"),
    ]
    return "\n\n".join([
        f"## Checkout at saturation: closed loop, {saturation['concurrency']} checkouts in flight, telemetry on "
        f"against off",
        f"Medians of {saturation['rounds']} ABBA rounds of {saturation['duration_s']:g} s per configuration (spread "
        "min-max); a checkout is cart add + `POST /v1/orders` (which calls the FDS); CPU is each process's user + "
        "system time over the run divided by the completed checkouts.",
        _table(("backend", "defaults", "mode", "checkouts/s", "spread", "errors", "checkout P95 ms",
                "CPU ms per checkout, ecommerce / fds / ml", "on/off"), rows),
        "Targets:\n" + "\n".join(lines)])


SIDES = ("before", "after")


def _share(profile: dict[str, Any] | None) -> str:
    return f"{profile['telemetry_pct']:.1f} %" if profile else "-"


def _ms(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def before_after_section(ba: dict[str, Any]) -> str:
    """``bench.before_after``: the FDS and ecommerce at an earlier commit and at this one, same run."""
    commits = {side: ba[side]["commit"][:7] for side in SIDES}
    parts = [f"## Before and after: the FDS and ecommerce at `{commits['before']}` and `{commits['after']}`, one run",
             f"`{ba.get('command', COMMANDS['before_after'])}`: the services of `{commits['before']}` (the last commit "
             f"before the work on the telemetry's price, {ba['before']['date'][:10]}) run from a git worktree under "
             "this harness beside this commit's, same machine, same sitting. FDS: wrk closed loop, ABBA over the "
             "four (commit, mode) pairs, embedded default; checkout: closed loop on PostgreSQL + Redis, development "
             "defaults, telemetry on and off. Profiles: py-spy `--gil` at saturation with telemetry on (development "
             "defaults); the telemetry share is the samples whose innermost non-standard-library frame is in "
             "`opentelemetry`, `otel_setup` or `sentry_sdk`, and the CPU it stands for is that share of the CPU per "
             "request."]
    profiles: dict[tuple[str, str], dict[str, Any] | None] = {}
    if "fds" in ba:
        fds = ba["fds"]["sides"]
        parts.append(_table(
            ("FDS evaluate", "commit", "development/s", "off/s", "on/off", "CPU ms/eval, development", "off",
             "telemetry share", "≈ telemetry CPU ms/eval", "errors"),
            [(side, f"`{commits[side]}`", f"{f['evaluations_per_s']['development']:.0f}",
              f"{f['evaluations_per_s']['disabled']:.0f}", f"**{f['ratio']:.2f}**",
              _ms(f["cpu_ms_per_evaluation"]["development"]), _ms(f["cpu_ms_per_evaluation"]["disabled"]),
              _share(f["profile"]), _ms(f["telemetry_cpu_ms"]), f["errors"])
             for side, f in ((side, fds[side]) for side in SIDES)]))
        profiles |= {("FDS", side): fds[side]["profile"] for side in SIDES}
    if "checkout" in ba:
        shop = ba["checkout"]["sides"]
        parts.append(_table(
            ("checkout", "commit", "telemetry/s", "off/s", "on/off", "ecommerce CPU ms/checkout, telemetry", "off",
             "telemetry share", "≈ telemetry CPU ms/checkout", "errors"),
            [(side, f"`{commits[side]}`", f"{c['checkouts_per_s']['telemetry']:.1f}",
              f"{c['checkouts_per_s']['disabled']:.1f}", "-" if c["ratio"] is None else f"**{c['ratio']:.2f}**",
              _ms(c["ecommerce_cpu_ms_per_checkout"]["telemetry"], 1),
              _ms(c["ecommerce_cpu_ms_per_checkout"]["disabled"], 1), _share(c["profile"]),
              _ms(c["telemetry_cpu_ms"], 1), f"{c['errors']['telemetry']:.2%}")
             for side, c in ((side, shop[side]) for side in SIDES)]))
        profiles |= {("ecommerce", side): shop[side]["profile"] for side in SIDES}
    packages: dict[str, float] = {}
    for profile in filter(None, profiles.values()):
        for name, pct in profile["packages_pct"].items():
            packages[name] = max(packages.get(name, 0.0), pct)
    if packages:
        parts += ["Profile at saturation, share of samples by package (%):",
                  _table(("package", *(f"{service} `{commits[side]}`" for service, side in profiles)),
                         [(name, *(_ms((profile or {}).get("packages_pct", {}).get(name, 0.0), 1)
                                   for profile in profiles.values()))
                          for name, top in sorted(packages.items(), key=lambda kv: -kv[1]) if top >= 1.0])]
    for service in dict.fromkeys(service for service, _ in profiles):
        tops = [list(((profiles[service, side] or {}).get("functions_self_pct") or {}).items())[:10] for side in SIDES]
        rows = [(i + 1, *(f"`{tops[k][i][0]}` {tops[k][i][1]:.1f}" if i < len(tops[k]) else "" for k in range(2)))
                for i in range(max(map(len, tops)))]
        if rows:
            parts += [f"{service}: functions by own samples (%), before and after:",
                      _table(("#", f"`{commits['before']}`", f"`{commits['after']}`"), rows)]
    return "\n\n".join(parts)


def _ci(r: dict[str, Any]) -> str:
    if r["value"] is None:
        return "no data"
    return f"{r['value']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] (n {r['n']})"


def accuracy_section(acc: dict[str, Any]) -> str:
    m, model = acc["metrics"], acc["model"]
    views = list(m["views"])
    rows = [(figure, *(_ci(m["views"][v][figure]) for v in views)) for figure in ("precision", "recall")]
    rows.append(("F1", *(f"{m['views'][v]['f1']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}] (bootstrap)"
                                                         if (ci := m["views"][v].get("f1_ci95")) else "")
                         for v in views)))
    rows += [(f"recall {name}", *(_ci(m["views"][v]["pattern_recall"][name]) for v in views))
             for name in m["views"][views[0]]["pattern_recall"]]
    confusion = [(d, c.get("fraud", 0), c.get("legit", 0)) for d, c in m["confusion"].items()]
    legit = [(name, g["n"], _ci(g["flagged"]), _ci(g["blocked"])) for name, g in m["legit"].items()]
    legit.append(("all unusual", m["unusual_blocked"]["n"], "", _ci(m["unusual_blocked"])))
    verdicts = [f"- {view}: " + "; ".join(f"{check} {_met(ok)}" for check, ok in checks.items())
                for view, checks in m["verdicts"].items()]
    return "\n\n".join([
        "## FDS accuracy on a held-out labeled set (through the FDS over HTTP)",
        f"{acc['transactions']} generated transactions, seed {acc['seed']} (the deployed model v{model['version']} "
        f"trained on seed {acc['training_seed']}: holdout AUC {model['metrics']['auc']:.4f}, precision "
        f"{model['metrics']['precision']:.3f}, recall {model['metrics']['recall']:.3f}), {acc['seconds']:.0f} s. "
        "Intervals are Wilson 95 %. Step-up counted as flagged is the FDS's own definition (its TP/FP "
        "counters and precision gauge); hold/block only is the stricter view.",
        _table(("decision", "fraud", "legitimate"), confusion),
        _table(("figure", *views), rows),
        _table(("legitimate", "n", "flagged (step-up counted)", "blocked"), legit),
        "Targets:\n" + "\n".join(verdicts),
    ])


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
    parts.append(saturation_section(results.get("saturation"), results.get("checkout_saturation")))
    if "checkout_saturation" in results:
        parts.append(checkout_saturation_section(results["checkout_saturation"]))
    if "before_after" in results:
        parts.append(before_after_section(results["before_after"]))
    if "telemetry_cost" in results:
        parts.append(telemetry_cost_section(results["telemetry_cost"]))
    parts += [checkout_section(results[name]) for name in ("checkout", "checkout_postgres") if name in results]
    if "services" in results:
        parts.append(services_section(results["services"]))
    if "workers" in results:
        parts.append(workers_section(results["workers"]))
    if "accuracy" in results:
        parts.append(accuracy_section(results["accuracy"]))
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
