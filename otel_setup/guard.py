"""Containment for telemetry code: a failing hook is logged once, counted, never raised.

Counts live here, outside any provider, so that failures during setup or shutdown are
counted too; ``configure`` exposes them as the ``otel_setup_*`` self-metrics.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Sentry's logging integration ignores this logger (see sentry.py): an error while reporting
# an error is never reported again.
log = logging.getLogger("otel_setup")

LabelKey = tuple[tuple[str, str], ...]


class SelfStats:
    """Thread-safe counters for the telemetry layer's own health."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[LabelKey, int]] = {}

    def add(self, metric: str, amount: int = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._counts.setdefault(metric, {})
            series[key] = series.get(key, 0) + amount

    def series(self, metric: str) -> list[tuple[dict[str, str], int]]:
        with self._lock:
            return [(dict(k), v) for k, v in self._counts.get(metric, {}).items()]

    def total(self, metric: str, **labels: str) -> int:
        wanted = set(labels.items())
        return sum(v for k, v in self.series(metric) if wanted <= set(k.items()))


STATS = SelfStats()
_warned: set[str] = set()


def report_failure(component: str, exc: BaseException) -> None:
    STATS.add("otel_setup_errors_total", component=component)
    if component not in _warned:
        _warned.add(component)
        log.warning("telemetry component %s failed; contained (further failures counted only)",
                    component, exc_info=exc)


def warn_once(key: str, message: str, *args: object) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


@contextmanager
def guard(component: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:  # telemetry must never raise into the caller
        report_failure(component, exc)
