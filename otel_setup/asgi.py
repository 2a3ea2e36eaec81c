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
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import sentry_sdk
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import http_span
from .exposition import render
from .guard import guard, report_failure
from .instruments import HttpInstruments
from .metrics_server import CHALLENGE, authorized
from .sentry import capture_unhandled
from .settings import TelemetrySettings
from .specs import UNMATCHED_ROUTE

# A client may send any token as the method: unknown ones share one label value (the OTel HTTP
# semantic conventions' "_OTHER"), or each would be a new series and a new in-progress gauge.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
OTHER_METHOD = "_OTHER"
# ``FastAPI(telemetry=...)``: FastAPI's own OpenTelemetry instrumentation off (ours is the one).
NATIVE_TELEMETRY_OFF = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


class RouteTemplates:
    """The route template of a request as the app's router knows it.

    Starlette puts the matched route in ``scope["route"]``; a route of a router included in
    another (FastAPI >= 0.16x includes routers lazily) knows only its own prefix. FastAPI's
    ``iter_route_contexts`` gives every route with its effective path (all the prefixes): that
    table, rebuilt when the app's routes change, maps the matched route to its full template
    (the same route included twice is told apart by which full path matches).
    """

    def __init__(self) -> None:
        self._app: object = None
        self._count = -1
        self._by_route: dict[int, list[tuple[re.Pattern[str], str]]] = {}

    def __call__(self, scope: Scope) -> str:
        route = scope.get("route")
        own = getattr(route, "path_format", None) or getattr(route, "path", None)
        if not own:
            return UNMATCHED_ROUTE
        candidates = self._table(scope.get("app")).get(id(route))
        if not candidates:
            return str(own)
        if len(candidates) == 1:
            return candidates[0][1]
        path = scope.get("path", "")
        return next((template for regex, template in candidates if regex.match(path)), str(own))

    def _table(self, app: object) -> dict[int, list[tuple[re.Pattern[str], str]]]:
        routes = getattr(getattr(app, "router", None), "routes", None)
        if routes is None:
            return {}
        if app is not self._app or len(routes) != self._count:
            table: dict[int, list[tuple[re.Pattern[str], str]]] = {}
            for context in iter_route_contexts(routes):
                template, regex = context.path_format, getattr(context, "path_regex", None)
                if template and regex is not None:
                    table.setdefault(id(context.original_route), []).append((regex, template))
            self._app, self._count, self._by_route = app, len(routes), table
        return self._by_route


class TelemetryMiddleware:
    """The server span, the HTTP metrics (into ``http``) and error capture of every request;
    ``flush(timeout_ms)`` sends what is queued when a server ends the app's lifespan."""

    def __init__(self, app: ASGIApp, *, http: HttpInstruments, tracer: Tracer | None,
                 excluded_paths: tuple[str, ...], flush: Callable[[int], None], flush_timeout: float) -> None:
        self.app = app
        self.http = http
        self.excluded = frozenset(excluded_paths)
        self.in_progress = http.in_progress
        self.errors = http.errors
        self.tracer = tracer
        self.flush = flush
        self.flush_timeout_ms = int(flush_timeout * 1000)
        self.route_template = RouteTemplates()

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
                route = self.route_template(scope)
                # While the server span is still current: the exemplars point at it.
                self.http.record(method, route, status, time.perf_counter() - start)
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
                await asyncio.to_thread(self.flush, self.flush_timeout_ms)
            await send(message)

        return wrapped

    def _on_exception(self, exc: Exception) -> None:
        with guard("error-capture"):
            self.errors.add(1, {"error_type": type(exc).__name__})
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


def metrics_endpoint(registry: CollectorRegistry, secret: SecretStr | None) -> Callable[[Request], Awaitable[Response]]:
    token = secret.get_secret_value() if secret else None

    async def metrics(request: Request) -> Response:
        if not authorized(request.headers.get("authorization"), token):
            return Response(b"unauthorized\n", status_code=401, media_type="text/plain",
                            headers={"WWW-Authenticate": CHALLENGE})
        body, content_type = await run_in_threadpool(
            render, registry, request.headers.get("accept")
        )
        return Response(body, media_type=None, headers={"Content-Type": content_type})

    return metrics


def instrument(app: FastAPI, *, http: HttpInstruments, tracer: Tracer | None, settings: TelemetrySettings,
               registry: CollectorRegistry, flush: Callable[[int], None]) -> None:
    if settings.metrics_path and not settings.metrics_port:  # else on its own port (metrics_server)
        app.add_route(settings.metrics_path, metrics_endpoint(registry, settings.metrics_token),
                      include_in_schema=False)
    app.add_middleware(TelemetryMiddleware, http=http, tracer=tracer,  # type: ignore[arg-type]
                       excluded_paths=settings.excluded_paths, flush=flush,
                       flush_timeout=settings.shutdown_timeout)
    _without_native_telemetry(app)


def _without_native_telemetry(app: FastAPI) -> None:
    """FastAPI >= 0.165 makes its own server span, ``http.server.*`` metrics and a span per
    dependency, endpoint and serialization step from the global providers, which ``configure``
    sets: each request would be traced twice and pay for both. Its public switch is
    ``FastAPI(telemetry={"tracing": False, ...})`` at construction (the services pass it); an app
    built without it has the same settings in the dict FastAPI reads them from."""
    config = getattr(app, "_telemetry", None)
    if isinstance(config, dict):
        config.update(NATIVE_TELEMETRY_OFF)
