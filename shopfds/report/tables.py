"""The report's tables as plain rows, shared by the console and the HTML renderers."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .figures import Figures
from .targets import TPS_CAPACITY, Check, Verdict, checks


@dataclass
class TableData:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    links: dict[tuple[int, int], str] = field(default_factory=dict)  # (row, column) -> URL


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "no data"
    if unit == "ms":
        return f"{value * 1000:.1f} ms"
    if unit == "%":
        return f"{value * 100:.3f} %"
    if unit == "/s":
        return f"{value:.2f} /s"
    if unit == "n":
        return f"{value:.0f}" if abs(value - round(value)) < 1e-9 else f"{value:.1f}"
    return f"{value:.3f}"


def _target(check: Check) -> str:
    return ("≥ " if check.higher_is_better else "≤ ") + fmt(check.target, check.unit)


def headline(f: Figures) -> tuple[bool, str]:
    """(SLAs hold, one line saying which SLA checks pass, fail or have no data)."""
    sla = [c for c in checks(f) if c.sla]
    failed = [c.name for c in sla if c.verdict is Verdict.FAIL]
    missing = [c.name for c in sla if c.verdict is Verdict.NO_DATA]
    text = f"SLAs broken: {', '.join(failed)}" if failed else "SLAs hold"
    if missing:
        text += f" (no data: {', '.join(missing)})"
    return not failed, text


def header(f: Figures) -> list[str]:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(f.evaluated_at))
    source = (f"Prometheus, window {f.since}" if f.source == "prometheus"
              else "scraped /metrics, cumulative since each service started")
    targets = ", ".join(f"{name} {'up' if up else 'DOWN'}" for name, up in f.targets.items()) or "none"
    return [f"ShopFDS SLO report at {stamp} ({source})", f"targets: {targets}", *f.notes]


def checks_table(f: Figures) -> TableData:
    table = TableData("Service levels and targets", ["figure", "value", "target", "verdict"])
    for c in checks(f):
        value = fmt(c.value, c.unit) + (f" (n {fmt(c.n, 'n')})" if c.min_n and c.value is not None else "")
        table.rows.append([c.name + (" (SLA)" if c.sla else ""), value, _target(c), c.verdict.value])
    return table


def traffic_table(f: Figures) -> TableData:
    per = "in window" if f.source == "prometheus" else "since start"
    table = TableData("Traffic and FDS", ["figure", "value", "note"])
    table.rows += [
        ["ecommerce TPS", fmt(f.tps, "/s"), f"capacity target {TPS_CAPACITY:.0f} TPS (not checked)"],
        ["checkouts/s", fmt(f.checkouts_per_s, "/s"), "orders created"],
        ["ecommerce requests", fmt(f.requests, "n"), per],
        ["FDS evaluations", fmt(f.fds_evaluations, "n"), per],
        ["FDS P50", fmt(f.fds_p50, "ms"), ""],
        ["FDS P95", fmt(f.fds_p95, "ms"), "SLA < 100 ms"],
        ["FDS P99", fmt(f.fds_p99, "ms"), ""],
        ["SLA violations (> 100 ms)", fmt(f.sla_violations, "n"), per],
        ["degraded decisions", fmt(f.degraded, "n"), "FDS calls with no verdict (fail policy)"],
        ["F1", fmt(f.f1, ""), ""],
    ]
    return table


def mix_table(title: str, counts: dict[str, float]) -> TableData:
    table = TableData(title, ["value", "count", "share"])
    total = sum(counts.values())
    for key, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        table.rows.append([key or "(none)", fmt(count, "n"), f"{count / total * 100:.1f} %" if total else "-"])
    return table


def exemplar_table(f: Figures) -> TableData:
    table = TableData("Slowest FDS evaluations (exemplars)", ["duration", "bucket le", "trace id", "follow",
                                                              "in trace store", "slowest engine span"])
    for i, ex in enumerate(f.exemplars):
        store = "-" if ex.in_store is None else ("yes" if ex.in_store else "no")
        engine = f"{ex.slowest_engine} {ex.slowest_engine_ms:.1f} ms" if ex.slowest_engine else "-"
        table.rows.append([fmt(ex.seconds, "ms"), ex.bucket, ex.trace_id, ex.link, store, engine])
        if ex.link.startswith(("http://", "https://")):
            table.links[(i, 3)] = ex.link
    return table


def all_tables(f: Figures) -> list[TableData]:
    return [checks_table(f), traffic_table(f), mix_table("Risk levels", f.risk_levels),
            mix_table("Decisions", f.decisions), exemplar_table(f)]
