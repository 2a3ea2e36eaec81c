"""The process's active ``Telemetry``: the one module-level state of otel_setup.

``configure`` sets it; the seed's helpers (``record_transaction``, ``start_transaction``...)
read it and do nothing before it exists. The OTel global providers can be set once a process,
so whether they are set is kept here too.
"""

from __future__ import annotations

import threading

from .telemetry import Telemetry


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.active: Telemetry | None = None
        self.globals_set = False


STATE = _State()


def current() -> Telemetry | None:
    return STATE.active


def release(telemetry: Telemetry) -> None:
    """``telemetry`` is shutting down: no longer the active instance."""
    with STATE.lock:
        if STATE.active is telemetry:
            STATE.active = None
