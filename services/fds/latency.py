"""Latency quantiles over a sliding window of recent evaluations, without sorting.

Each duration falls in one of ~280 log-spaced buckets (5 % wide, 0.1 ms to 100 s); a ring of
the last ``size`` bucket indices lets the oldest sample leave its bucket when a new one comes.
A quantile is one cumulative pass over the bucket counts, reported at the bucket's geometric
middle: at most ~2.5 % off, O(buckets) per update whatever the window size.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

_LOW = 1e-4
_GROWTH = 1.05
_BUCKETS = math.ceil(math.log(100.0 / _LOW) / math.log(_GROWTH)) + 1
QUANTILES = (0.5, 0.9, 0.95, 0.99)


class LatencyWindow:
    def __init__(self, size: int) -> None:
        self.size = size
        self._ring = [0] * size
        self._counts = [0] * _BUCKETS
        self._next = 0
        self._filled = 0

    def __len__(self) -> int:
        return self._filled

    def add(self, seconds: float) -> None:
        bucket = _bucket(seconds)
        if self._filled == self.size:
            self._counts[self._ring[self._next]] -= 1
        else:
            self._filled += 1
        self._ring[self._next] = bucket
        self._counts[bucket] += 1
        self._next = (self._next + 1) % self.size

    def quantiles(self, qs: Iterable[float] = QUANTILES) -> dict[float, float]:
        """{q: seconds}; empty while the window is empty.

        Called at collect time, possibly on another thread (the metrics listener, the OTLP
        reader) while ``add`` runs on the event loop: it reads one copy of the counts, taken
        at once under the GIL, and their sum, so it never sees a sample half moved."""
        counts = self._counts.copy()
        filled = sum(counts)
        if not filled:
            return {}
        wanted = sorted((max(1, math.ceil(q * filled)), q) for q in qs)
        out: dict[float, float] = {}
        seen, i = 0, 0
        for bucket, count in enumerate(counts):
            seen += count
            while i < len(wanted) and seen >= wanted[i][0]:
                out[wanted[i][1]] = _middle(bucket)
                i += 1
            if i == len(wanted):
                break
        return out


def _bucket(seconds: float) -> int:
    if seconds <= _LOW:
        return 0
    return min(_BUCKETS - 1, 1 + int(math.log(seconds / _LOW) / math.log(_GROWTH)))


def _middle(bucket: int) -> float:
    if bucket == 0:
        return _LOW
    return _LOW * _GROWTH ** (bucket - 0.5)
