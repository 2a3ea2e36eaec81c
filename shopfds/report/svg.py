"""Small inline SVG charts for the HTML report: a time-series line chart and a bar chart.

No scripts, no external references: plain ``<svg>`` elements with inline styles, so the HTML file
stands alone. Values are plotted as given; callers scale units (e.g. seconds -> ms) first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from html import escape

COLORS = ("#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd")
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 56, 16, 24, 36


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``high`` (about ``count`` of them)."""
    if not high > 0 or math.isinf(high):
        return [0.0, 1.0]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(math.ceil(high / step - 1e-9) + 1)]


def scale(value: float, lo: float, hi: float, out_lo: float, out_hi: float) -> float:
    """``value`` mapped linearly from [lo, hi] to [out_lo, out_hi] (the middle when lo == hi)."""
    if hi == lo:
        return (out_lo + out_hi) / 2
    return out_lo + (value - lo) * (out_hi - out_lo) / (hi - lo)


def _fmt(value: float) -> str:
    return f"{value:g}"


def _frame(width: int, height: int, title: str, ticks: list[float], unit: str) -> list[str]:
    bottom, top = height - PAD_BOTTOM, PAD_TOP
    parts = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{escape(title)}">',
             f'<text x="{PAD_LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>']
    for tick in ticks:
        y = scale(tick, 0, ticks[-1], bottom, top)
        parts.append(f'<line x1="{PAD_LEFT}" y1="{y:.1f}" x2="{width - PAD_RIGHT}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">'
                     f'{_fmt(tick)} {escape(unit)}</text>')
    return parts


def _threshold(width: int, height: int, value: float, top_tick: float, label: str) -> list[str]:
    y = scale(value, 0, top_tick, height - PAD_BOTTOM, PAD_TOP)
    return [f'<line x1="{PAD_LEFT}" y1="{y:.1f}" x2="{width - PAD_RIGHT}" y2="{y:.1f}" stroke="#d62728" '
            f'stroke-dasharray="6 4"/>',
            f'<text x="{width - PAD_RIGHT}" y="{y - 4:.1f}" font-size="11" text-anchor="end" fill="#d62728">'
            f'{escape(label)}</text>']


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str, unit: str = "ms",
               threshold: float | None = None, threshold_label: str = "", width: int = 720,
               height: int = 260) -> str:
    """Lines over time: ``series`` maps a name to (unix time, value) points."""
    points = [p for values in series.values() for p in values]
    if not points:
        return f'<p class="note">{escape(title)}: no data points</p>'
    t0, t1 = min(p[0] for p in points), max(p[0] for p in points)
    ticks = nice_ticks(max([p[1] for p in points] + [threshold or 0.0]))
    parts = _frame(width, height, title, ticks, unit)
    for i, (name, values) in enumerate(series.items()):
        coords = " ".join(f"{scale(t, t0, t1, PAD_LEFT, width - PAD_RIGHT):.1f},"
                          f"{scale(v, 0, ticks[-1], height - PAD_BOTTOM, PAD_TOP):.1f}" for t, v in values)
        color = COLORS[i % len(COLORS)]
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>')
        parts.append(f'<text x="{PAD_LEFT + 8 + 70 * i}" y="{height - 6}" font-size="11" fill="{color}">'
                     f'{escape(name)}</text>')
    if threshold is not None:
        parts += _threshold(width, height, threshold, ticks[-1], threshold_label)
    for t in (t0, t1):
        x = scale(t, t0, t1, PAD_LEFT, width - PAD_RIGHT)
        anchor = "start" if t == t0 else "end"
        parts.append(f'<text x="{x:.1f}" y="{height - PAD_BOTTOM + 14}" font-size="11" text-anchor="{anchor}">'
                     f'{time.strftime("%H:%M:%S", time.localtime(t))}</text>')
    return "\n".join(parts + ["</svg>"])


def bar_chart(bars: Sequence[tuple[str, float | None, float | None]], *, title: str, unit: str = "ms",
              width: int = 480, height: int = 240) -> str:
    """One bar per (label, value, budget); a dashed budget mark over each bar; no value -> no bar."""
    if not bars:
        return f'<p class="note">{escape(title)}: no data</p>'
    ticks = nice_ticks(max([v or 0.0 for _, v, _ in bars] + [b or 0.0 for _, _, b in bars]))
    parts = _frame(width, height, title, ticks, unit)
    slot = (width - PAD_LEFT - PAD_RIGHT) / len(bars)
    bottom = height - PAD_BOTTOM
    for i, (label, value, budget) in enumerate(bars):
        x = PAD_LEFT + i * slot + slot * 0.2
        if value is not None:
            y = scale(value, 0, ticks[-1], bottom, PAD_TOP)
            over = budget is not None and value > budget
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.6:.1f}" height="{bottom - y:.1f}" '
                         f'fill="{"#d62728" if over else "#1f77b4"}"><title>{escape(label)}: {value:.1f} '
                         f'{escape(unit)}</title></rect>')
        if budget is not None:
            yb = scale(budget, 0, ticks[-1], bottom, PAD_TOP)
            parts.append(f'<line x1="{x - 4:.1f}" y1="{yb:.1f}" x2="{x + slot * 0.6 + 4:.1f}" y2="{yb:.1f}" '
                         f'stroke="#333" stroke-width="2" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{x + slot * 0.3:.1f}" y="{bottom + 14}" font-size="11" text-anchor="middle">'
                     f'{escape(label)}</text>')
    return "\n".join(parts + ["</svg>"])
