"""sentry-sdk's HTTP transport, counting what it loses.

sentry-sdk sends events from one background thread through a bounded queue and drops, without
raising, what it cannot deliver: the network failed, Sentry answered 429 (and the SDK then
backs off) or another error status, or the queue was full. It reports each such loss to
``on_dropped_event`` (a no-op hook of its HTTP transport); :class:`CountingTransport` counts them
as ``otel_setup_sentry_events_dropped_total{reason}``, beside the events ``before_send``
drops, so a dead or rate-limiting Sentry shows on ``/metrics``.

While Sentry is known to be unreachable (a network error on the last send, ``backoff.DownGate``)
an envelope is dropped before it is compressed or a connection tried, and counted as the
``network_error`` it would have been: a dead DSN then costs the sender thread (and the GIL the
requests need) nothing per event. The gate probes again after a jittered, growing pause.

``on_dropped_event`` is called once per lost envelope; an envelope holds one event here (errors
and warnings; traces go to Sentry over OTLP, not through this transport). The SDK's own
``record_lost_event`` is not used: it is per item, misses the first 429 (the server counted
it) and names every HTTP error ``network_error``.
"""

from __future__ import annotations

from typing import Any

from sentry_sdk.transport import HttpTransport

from .backoff import DownGate
from .guard import STATS, guard

# sentry-sdk's reason -> ours (the same words as the span drop reasons where they mean the same).
_REASONS = {
    "network": "network_error",
    "full_queue": "queue_full",
    "self_rate_limits": "rate_limited",  # dropped locally while backing off after a 429
    "internal_sdk_error": "sdk_error",
}
# HTTP statuses kept as their own label value; any other becomes status_4xx / status_5xx.
_STATUSES = frozenset({"400", "401", "403", "413", "429", "500", "502", "503", "504"})


def drop_reason(sdk_reason: str) -> str:
    """The label value for one of sentry-sdk's loss reasons (a small, fixed set)."""
    if sdk_reason in _REASONS:
        return _REASONS[sdk_reason]
    code = sdk_reason.removeprefix("status_")
    if code != sdk_reason:
        return f"status_{code}" if code in _STATUSES else f"status_{code[:1]}xx"
    return "other"


class CountingTransport(HttpTransport):
    """``sentry_sdk.init(transport=CountingTransport)``: sentry-sdk's transport, losses counted."""

    # sentry-sdk waits 30 s for an answer; that long a hang holds its one sender thread while the
    # queue behind it fills. Errors are small: 5 s is plenty for a live Sentry.
    TIMEOUT = 5

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = DownGate()

    def _send_envelope(self, envelope: Any) -> None:
        if not self.gate.open():
            self.on_dropped_event("network")
            return
        try:
            super()._send_envelope(envelope)
        except Exception:  # the SDK raises network failures only (and has counted the loss)
            self.gate.failed()
            raise
        self.gate.succeeded()

    def on_dropped_event(self, reason: str) -> None:
        with guard("sentry-transport"):  # counting must never disturb the SDK's sender thread
            STATS.add("otel_setup_sentry_events_dropped_total", reason=drop_reason(reason))
