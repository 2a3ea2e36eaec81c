"""Where an exemplar's trace can be followed: Sentry, or the local trace store.

Sentry trace URL assumption: a SaaS DSN's host is ``o<ORG_ID>.ingest[.<region>].sentry.io``, and
``https://o<ORG_ID>.sentry.io/performance/trace/<trace_id>/`` is that organization's trace view
(Sentry resolves the ``o<id>`` subdomain like the organization slug). Any other host is taken as
self-hosted Sentry with the default organization slug ``sentry``:
``<scheme>://<host>/organizations/sentry/performance/trace/<trace_id>/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from otel_setup.catalog import ENGINE_SPAN_PREFIX, Attr
from otel_setup.trace_store import find_trace

from .figures import ExemplarLink
from .sources import RawExemplar

_SAAS_HOST = re.compile(r"^o(\d+)\.ingest(?:\.[a-z0-9-]+)?\.sentry\.io$")


def sentry_trace_url(dsn: str, trace_id: str) -> str:
    """The Sentry trace view URL for ``trace_id`` in the organization of ``dsn`` (ValueError if unusable)."""
    from sentry_sdk.utils import BadDsn, Dsn

    try:
        parsed = Dsn(dsn)
    except BadDsn as exc:
        raise ValueError(f"invalid Sentry DSN: {exc}") from None
    saas = _SAAS_HOST.match(parsed.host)
    if saas:
        return f"https://o{saas.group(1)}.sentry.io/performance/trace/{trace_id}/"
    return f"{parsed.scheme}://{parsed.netloc}/organizations/sentry/performance/trace/{trace_id}/"


def trace_link(trace_id: str, dsn: str | None) -> str:
    return sentry_trace_url(dsn, trace_id) if dsn else f"shopfds trace {trace_id}"


def slowest_engine(spans: list[dict[str, Any]]) -> tuple[str, float] | None:
    """(engine, duration ms) of the slowest engine span of a trace, if it has one."""
    engines = [s for s in spans
               if str(s.get("name", "")).startswith(ENGINE_SPAN_PREFIX) or Attr.FDS_ENGINE in s.get("attributes", {})]
    if not engines:
        return None
    slow = max(engines, key=lambda s: float(s.get("duration_ms", 0.0)))
    name = slow.get("attributes", {}).get(Attr.FDS_ENGINE) or str(slow["name"]).removeprefix(ENGINE_SPAN_PREFIX)
    return str(name), float(slow.get("duration_ms", 0.0))


def link(raw: RawExemplar, dsn: str | None, store: Path | None) -> ExemplarLink:
    in_store: bool | None = None
    engine: tuple[str, float] | None = None
    if store is not None:
        spans = find_trace(store, raw.trace_id)
        in_store = bool(spans)
        engine = slowest_engine(spans)
    return ExemplarLink(trace_id=raw.trace_id, span_id=raw.span_id, seconds=raw.seconds, bucket=raw.bucket,
                        link=trace_link(raw.trace_id, dsn), timestamp=raw.timestamp, in_store=in_store,
                        slowest_engine=engine[0] if engine else None,
                        slowest_engine_ms=engine[1] if engine else None)
