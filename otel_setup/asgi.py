"""FastAPI/ASGI wiring: server spans, HTTP metrics by route template, error capture, /metrics.

One middleware makes the server span (``http_span``: the contrib ASGI middleware's attributes
in their stable names, without its second routing pass and per-message wrappers) and, inside it:

- HTTP metrics carry the route template (``/v1/products/{product_id}``), never the raw path;
  unmatched routes collapse to ``unmatched``, unknown methods to ``_OTHER``; exemplars point at
  the server span.
- An unhandled exception is sent to Sentry *inside* the server span, so the Sentry event's
  trace id is the OTel trace id (Sentry's own ASGI capture point lies outside that span and is
  disabled in ``sentry.py``).
- When a server ends the app's lifespan, queued telemetry is flushed (bounded by
  ``SHOPFDS_SHUTDOWN_TIMEOUT``): uvicorn's SIGTERM exit skips atexit hooks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import sentry_sdk
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import http_span
from .catalog import UNMATCHED_ROUTE
from .exposition import render
from .guard import guard, report_failure
from .metrics import record_http_request
from .metrics_server import CHALLENGE, authorized

# A client may send any token as the method: unknown ones share one label value (the OTel HTTP
# semantic conventions' "_OTHER"), or each would be a new series and a new in-progress gauge.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
OTHER_METHOD = "_OTHER"
# ``FastAPI(telemetry=...)``: FastAPI's own OpenTelemetry instrumentation off (ours is the one).
NATIVE_TELEMETRY_OFF = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not path:
        return UNMATCHED_ROUTE
    regex = getattr(route, "path_regex", None)
    if regex is not None and not regex.match(scope.get("path", "")):
        return _with_outer_prefix(str(path), scope.get("path", ""))
    return str(path)


def _with_outer_prefix(template: str, path: str) -> str:
    """A route of a router nested in a prefixed router knows only its own prefix (FastAPI >= 0.16x
    includes routers lazily): the outer prefix is the leading segments the template does not
    cover. Segments that look like ids become ``{param}`` so a label never carries one."""
    actual = [s for s in path.split("/") if s]
    own = [s for s in template.split("/") if s]
    if ":path}" in template or len(own) > len(actual):
        return template
    outer = ["{param}" if _id_like(s) else s for s in actual[: len(actual) - len(own)]]
    return "/" + "/".join(outer + own) if outer else template


def _id_like(segment: str) -> bool:
    # "v1" is a version, "42" or "3f2a9c1e-..." an id.
    digits = sum(ch.isdigit() for ch in segment)
    return segment.isdigit() or (len(segment) >= 8 and digits >= 2) or len(segment) > 24


class TelemetryMiddleware:
    def __init__(self, app: ASGIApp, telemetry: Any) -> None:
        self.app = app
        self.telemetry = telemetry
        self.excluded = frozenset(telemetry.settings.excluded_paths)
        self.in_progress = telemetry.in_progress
        self.errors = telemetry.http_errors
        self.tracer = telemetry.tracer if telemetry.enabled else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._flush_at_shutdown(send))
            return
        if scope["type"] != "http" or scope["path"] in self.excluded:
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in HTTP_METHODS else OTHER_METHOD
        status = 500
        raised = False
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_progress = self.in_progress
        in_progress[method] = in_progress.get(method, 0) + 1
        span = token = error = None
        if self.tracer is not None:
            try:
                span, token = http_span.start(self.tracer, scope, method)
            except Exception as exc:
                report_failure("server-span", exc)
        try:
            with _request_scope():
                try:
                    await self.app(scope, receive, send_wrapper)
                except Exception as exc:
                    self._on_exception(exc)  # inside the request's Sentry scope: its breadcrumbs
                    raise
        except Exception as exc:
            status, raised, error = 500, True, exc
            raise
        finally:
            in_progress[method] -= 1
            route = UNMATCHED_ROUTE
            try:  # not guard(): a generator context manager on every request costs more
                route = route_template(scope)
                # While the server span is still current: the exemplars point at it.
                record_http_request(method, route, status, time.perf_counter() - start, telemetry=self.telemetry)
                if status >= 500 and not raised:
                    self.errors.add(1, {"error_type": f"http_{status}"})
            except Exception as exc:
                report_failure("http-metrics", exc)
            if span is not None:
                try:
                    http_span.finish(span, token, method, None if route == UNMATCHED_ROUTE else route, status, error)
                except Exception as exc:
                    report_failure("server-span", exc)

    def _flush_at_shutdown(self, send: Send) -> Send:
        # uvicorn ends a SIGTERM by raising the signal again once the lifespan is over: the
        # process dies without running atexit hooks. The end of the lifespan (the app's own
        # cleanup done) is the last moment to send what is queued; bounded like a shutdown.
        async def wrapped(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                timeout_ms = int(self.telemetry.settings.shutdown_timeout * 1000)
                await asyncio.to_thread(self.telemetry.force_flush, timeout_ms)
            await send(message)

        return wrapped

    def _on_exception(self, exc: Exception) -> None:
        with guard("error-capture"):
            self.errors.add(1, {"error_type": type(exc).__name__})
            from .sentry import capture_unhandled

            capture_unhandled(exc)


def _request_scope() -> AbstractContextManager[object]:
    """A Sentry isolation scope of the request's own, as sentry-sdk's ASGI integration makes (off
    here, see ``sentry.py``). Without it breadcrumbs (log lines, SQL, FDS steps) of every request
    pile up in one global scope: each event carried the last 100, other users' included, and
    ``before_send`` scrubbed all 100 again on the request path."""
    if not sentry_sdk.get_client().is_active():
        return nullcontext()
    return _fresh_isolation_scope()


@contextmanager
def _fresh_isolation_scope() -> Iterator[None]:
    with sentry_sdk.isolation_scope() as scope:
        scope.clear_breadcrumbs()  # the fork copies the global scope's (background tasks')
        yield


def metrics_endpoint(telemetry: Any) -> Any:
    secret = telemetry.settings.metrics_token
    token = secret.get_secret_value() if secret else None

    async def metrics(request: Request) -> Response:
        if not authorized(request.headers.get("authorization"), token):
            return Response(b"unauthorized\n", status_code=401, media_type="text/plain",
                            headers={"WWW-Authenticate": CHALLENGE})
        body, content_type = await run_in_threadpool(
            render, telemetry.registry, request.headers.get("accept")
        )
        return Response(body, media_type=None, headers={"Content-Type": content_type})

    return metrics


def instrument(app: Any, telemetry: Any) -> None:
    settings = telemetry.settings
    if settings.metrics_path and not settings.metrics_port:  # else on its own port (metrics_server)
        app.add_route(settings.metrics_path, metrics_endpoint(telemetry), include_in_schema=False)
    app.add_middleware(TelemetryMiddleware, telemetry=telemetry)
    _without_native_telemetry(app)


def _without_native_telemetry(app: Any) -> None:
    """FastAPI >= 0.165 makes its own server span, ``http.server.*`` metrics and a span per
    dependency, endpoint and serialization step from the global providers, which ``configure``
    sets: each request would be traced twice and pay for both. Its public switch is
    ``FastAPI(telemetry={"tracing": False, ...})`` at construction (the services pass it); an app
    built without it has the same settings in the dict FastAPI reads them from."""
    config = getattr(app, "_telemetry", None)
    if isinstance(config, dict):
        config.update(NATIVE_TELEMETRY_OFF)
