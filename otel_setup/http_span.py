"""The HTTP server span of a request, made by ``TelemetryMiddleware`` itself.

The contrib ASGI/FastAPI middleware cost more per request than the FDS's own evaluation spans:
it matched the request against every route once more to name the span, built its attributes
twice (old and stable names), wrapped ``send`` in a closure per request and recorded its own
HTTP metrics into a no-op meter. Our middleware already knows the route template once the app
has routed (``scope["route"]``), so it names the span at the end (``POST /v1/fds/evaluate``, or
the method alone for an unmatched path, as the contrib does) and sets the same attributes in
their stable names (``catalog.Attr``): method (``_OTHER`` plus the original for unknown ones),
``url.path`` / ``url.query``, ``url.scheme``, ``http.route``, ``http.response.status_code``,
``server.address`` / ``server.port`` (from the Host header), ``client.address`` / ``client.port``,
``user_agent.original`` and ``network.protocol.version``.

The incoming context (W3C ``traceparent`` / ``baggage``, or whatever ``OTEL_PROPAGATORS`` names)
is extracted through the global propagator. A 5xx response or an unhandled exception marks the
span as an error with ``error.type`` (the status code, or the exception's class) and the
exception as a span event, which the exporters scrub like every other event.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from .specs import SemconvAttr as A

Scope = MutableMapping[str, Any]


class _HeaderGetter(Getter[Scope]):
    """Reads request headers from an ASGI scope for the propagators (names are lower-case)."""

    def get(self, carrier: Scope, key: str) -> list[str] | None:
        wanted = key.lower().encode("latin-1")
        values = [v.decode("latin-1") for k, v in carrier.get("headers") or () if k == wanted]
        return values or None

    def keys(self, carrier: Scope) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier.get("headers") or ()]


_GETTER = _HeaderGetter()


def request_attributes(scope: Scope, method: str) -> dict[str, Any]:
    """The server span's attributes known before the app runs."""
    attributes: dict[str, Any] = {A.HTTP_REQUEST_METHOD: method, A.URL_PATH: scope.get("path", ""),
                                  A.URL_SCHEME: scope.get("scheme", "http")}
    if method != scope.get("method"):
        attributes[A.HTTP_REQUEST_METHOD_ORIGINAL] = scope.get("method", "")
    if query := scope.get("query_string"):
        attributes[A.URL_QUERY] = query.decode("latin-1") if isinstance(query, bytes) else str(query)
    if version := scope.get("http_version"):
        attributes[A.NETWORK_PROTOCOL_VERSION] = version
    host, agent = _host_and_agent(scope.get("headers") or ())
    server = scope.get("server") or (None, None)
    address, port = _split_host(host) if host else (server[0], server[1])
    if address:
        attributes[A.SERVER_ADDRESS] = address
    if port:
        attributes[A.SERVER_PORT] = port
    if client := scope.get("client"):
        attributes[A.CLIENT_ADDRESS], attributes[A.CLIENT_PORT] = client[0], client[1]
    if agent:
        attributes[A.USER_AGENT_ORIGINAL] = agent
    return attributes


def _host_and_agent(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, str | None]:
    host = agent = None
    for key, value in headers:
        if key == b"host":
            host = value.decode("latin-1")
        elif key == b"user-agent":
            agent = value.decode("latin-1")
    return host, agent


def _split_host(host: str) -> tuple[str, int | None]:
    """``shop.example.com:8443`` -> (``shop.example.com``, 8443); ``[::1]:80`` -> (``::1``, 80)."""
    name, sep, port = host.rpartition(":")
    if not sep or "]" in port:
        return host.strip("[]"), None
    return name.strip("[]"), int(port) if port.isdigit() else None


def start(tracer: trace.Tracer, scope: Scope, method: str) -> tuple[trace.Span, object]:
    """Start the server span as a child of the caller's context and make it current."""
    parent = propagate.extract(scope, getter=_GETTER)
    span = tracer.start_span(method if method != "_OTHER" else "HTTP", parent, SpanKind.SERVER,
                             request_attributes(scope, method))
    token = context_api.attach(trace.set_span_in_context(span, parent))
    return span, token


def finish(span: trace.Span, token: object, method: str, route: str | None, status: int,
           error: BaseException | None) -> None:
    """Name the span by its route, set the response attributes and end it."""
    context_api.detach(token)  # type: ignore[arg-type]
    if span.is_recording():
        if route is not None:
            span.update_name(f"{method if method != '_OTHER' else 'HTTP'} {route}")
            span.set_attribute(A.HTTP_ROUTE, route)
        span.set_attribute(A.HTTP_RESPONSE_STATUS_CODE, status)
        if error is not None:
            span.record_exception(error)
            span.set_attribute(A.ERROR_TYPE, type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        elif status >= 500:
            span.set_attribute(A.ERROR_TYPE, str(status))
            span.set_status(Status(StatusCode.ERROR))
    span.end()
