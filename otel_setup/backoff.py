"""A known-down gate for exporters: after a failed export, the next ones are not attempted.

A telemetry backend that is down costs every export its encoding, compression, connection
attempts and retries, all on threads that share the GIL with requests: at saturation that was
up to a quarter of a service's throughput. The exporters (OTLP traces, metrics and logs; the
Sentry transport) therefore ask the gate first: while it is shut, a batch or event is dropped at
once (still counted as the failure it is), without being encoded or sent. After each failure
the gate stays shut for twice as long as the last time (``INITIAL_SECONDS`` up to
``CAP_SECONDS``, half of it random so that services do not probe in step); then one export is
let through as a probe: success opens it, failure shuts it again for longer. A backend that comes
back is used again within ``CAP_SECONDS``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

INITIAL_SECONDS = 1.0
CAP_SECONDS = 30.0


class DownGate:
    def __init__(self, initial: float = INITIAL_SECONDS, cap: float = CAP_SECONDS,
                 clock: Callable[[], float] = time.monotonic, jitter: Callable[[], float] = random.random) -> None:
        self.initial = initial
        self.cap = cap
        self.failures = 0
        self._clock = clock
        self._jitter = jitter
        self._shut_until = 0.0
        self._lock = threading.Lock()

    def open(self) -> bool:
        """True when an export may be attempted (the backend is not known to be down)."""
        return self._clock() >= self._shut_until

    def failed(self) -> None:
        with self._lock:
            self.failures += 1
            pause = min(self.cap, self.initial * 2 ** min(self.failures - 1, 30))
            self._shut_until = self._clock() + pause / 2 + self._jitter() * pause / 2

    def succeeded(self) -> None:
        with self._lock:
            self.failures = 0
            self._shut_until = 0.0
