"""``--html FILE``: the report as one self-contained HTML page (inline CSS and SVG, no scripts)."""

from __future__ import annotations

from html import escape
from pathlib import Path

from otel_setup.catalog import FDS_SLA_SECONDS

from .figures import Figures
from .svg import bar_chart, line_chart
from .tables import TableData, all_tables, header, headline
from .targets import ENGINE_BUDGETS

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f4f4f4}.PASS{color:#1a7f37;font-weight:bold}.FAIL{color:#d62728;font-weight:bold}
.ok{background:#e6f4ea;padding:.6em 1em}.broken{background:#fde7e9;padding:.6em 1em}
.note{color:#666}code{font-size:90%}"""


def html_table(data: TableData) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in data.columns)
    rows = []
    for r, row in enumerate(data.rows):
        cells = []
        for c, cell in enumerate(row):
            url = data.links.get((r, c))
            body = f'<a href="{escape(url)}">{escape(cell)}</a>' if url else escape(cell)
            css = f' class="{escape(cell)}"' if cell in ("PASS", "FAIL") else ""
            cells.append(f"<td{css}>{body}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<h2>{escape(data.title)}</h2>\n<table><tr>{head}</tr>\n" + "\n".join(rows) + "</table>"


def latency_chart(f: Figures) -> str:
    if f.latency_series is None:
        return '<p class="note">FDS latency over time needs Prometheus (history); not available for this report.</p>'
    series = {name: [(t, v[name] * 1000) for t, v in f.latency_series if name in v] for name in ("P50", "P95", "P99")}
    return line_chart(series, title="FDS evaluation latency (ms)", threshold=FDS_SLA_SECONDS * 1000,
                      threshold_label="SLA 100 ms")


def engine_chart(f: Figures) -> str:
    bars = [(engine, None if v is None else v * 1000,
             ENGINE_BUDGETS[engine] * 1000 if engine in ENGINE_BUDGETS else None) for engine, v in f.engine_p95.items()]
    return bar_chart(bars, title="Engine P95 (ms) vs budget (dashed)")


def render_html(f: Figures) -> str:
    ok, text = headline(f)
    lines = header(f)
    notes = "".join(f'<p class="note">{escape(line)}</p>' for line in lines[1:])
    tables = "\n".join(html_table(t) for t in all_tables(f) if t.rows)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(lines[0])}</title>'
            f"<style>{_CSS}</style></head><body>\n<h1>{escape(lines[0])}</h1>\n"
            f'<p class="{"ok" if ok else "broken"}"><strong>{escape(text)}</strong></p>{notes}\n'
            f"<h2>FDS latency over time</h2>\n{latency_chart(f)}\n<h2>Engines</h2>\n{engine_chart(f)}\n"
            f"{tables}\n</body></html>\n")


def write_html(f: Figures, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(f), encoding="utf-8")
    return path
