"""``shopfds trace TRACE_ID``: the span waterfall of one trace from the local trace store."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from otel_setup.catalog import Attr

# Stable semantic conventions (otel_setup.semconv): the HTTP status and the database query.
_KEY_ATTRIBUTES = (Attr.FDS_ENGINE, Attr.HTTP_ROUTE, Attr.HTTP_RESPONSE_STATUS_CODE, Attr.DB_SYSTEM_NAME,
                   Attr.FDS_DECISION, Attr.FDS_RISK_SCORE, Attr.FDS_STATUS, "exception.type")


def _depths(spans: list[dict[str, Any]]) -> dict[str, int]:
    by_id = {s["span_id"]: s for s in spans}
    depths: dict[str, int] = {}

    def depth(span: dict[str, Any], guard: int = 0) -> int:
        parent = by_id.get(span.get("parent_span_id") or "")
        if parent is None or guard > 64:
            return 0
        return 1 + depth(parent, guard + 1)

    for span in spans:
        depths[span["span_id"]] = depth(span)
    return depths


def _process(span: dict[str, Any]) -> str:
    """The service, or the worker that wrote the span (``fds-2``) when the processes are named."""
    service, instance = str(span.get("service") or ""), str(span.get("instance") or "")
    return instance if service and instance.startswith(f"{service}-") else service


def waterfall(spans: list[dict[str, Any]], width: int = 30) -> Table:
    start = min(s["start_unix_nano"] for s in spans)
    end = max(s["end_unix_nano"] for s in spans)
    total = max(end - start, 1)
    depths = _depths(spans)
    table = Table(title=f"trace {spans[0]['trace_id']}  ({total / 1e6:.1f} ms)")
    for column in ("service", "span", "start ms", "duration ms", "", "status", "attributes"):
        # SQL spans are named after their database file and a Redis pipeline's span lists every
        # command: cut long names so the service and attributes keep room.
        table.add_column(column, justify="right" if "ms" in column else "left",
                         no_wrap=column != "attributes", max_width=40 if column == "span" else None,
                         min_width=32 if column == "attributes" else None,
                         overflow="fold" if column == "attributes" else "ellipsis")
    for span in spans:
        offset = (span["start_unix_nano"] - start) / total
        share = max((span["end_unix_nano"] - span["start_unix_nano"]) / total, 1 / width)
        bar = " " * int(offset * width) + "█" * max(1, int(share * width))
        status = span["status"]
        attrs = {k: v for k, v in span.get("attributes", {}).items() if k in _KEY_ATTRIBUTES}
        table.add_row(
            _process(span),
            "  " * depths[span["span_id"]] + span["name"],
            f"{(span['start_unix_nano'] - start) / 1e6:.1f}",
            f"{span['duration_ms']:.1f}",
            Text(bar[:width], style="red" if status == "ERROR" else "cyan"),
            Text(status, style="red" if status == "ERROR" else ""),
            " ".join(f"{k}={v}" for k, v in attrs.items()),
        )
    return table


def print_trace(spans: list[dict[str, Any]], console: Console) -> None:
    console.print(waterfall(spans))


def trace_log_lines(directory: Path, trace_id: str) -> list[dict[str, Any]]:
    """The JSON log lines of one trace from ``<directory>/*.jsonl`` (rotated files included)."""
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.glob("*.jsonl*")):
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if trace_id in line:
                    with contextlib.suppress(ValueError):
                        record = json.loads(line)
                        if record.get("trace_id") == trace_id:
                            found.append(record)
    return sorted(found, key=lambda r: str(r.get("ts", "")))


def print_logs(lines: list[dict[str, Any]], console: Console) -> None:
    if not lines:
        return
    table = Table(title=f"{len(lines)} log lines", show_lines=False)
    for column in ("time", "service", "level", "logger", "message"):
        table.add_column(column, overflow="fold")
    for line in lines:
        message = str(line.get("message", ""))
        if line.get("exception"):
            message += " | " + str(line["exception"]).strip().splitlines()[-1]
        table.add_row(str(line.get("ts", ""))[11:23], str(line.get("service.name", "")), str(line.get("level", "")),
                      str(line.get("logger", "")), message)
    console.print(table)
