"""``create_service_app``: the FastAPI app every service starts from.

It wires, once and the same way for all four services:

- telemetry (``otel_setup.configure``), which adds ``/metrics``, server spans and HTTP metrics;
- the database and cache on ``app.state`` (opened and closed by the lifespan);
- ``GET /health`` (database and cache checked for real);
- errors: validation -> 422 with field errors and *without* the rejected input echoed back (it
  may hold a card number); a value the database refuses (SQLSTATE class 22, such as a NUL
  character for PostgreSQL) -> 422; database unreachable -> 503; body too large -> 413; any other
  exception -> 500 with no details (and it is captured to Sentry inside the server span).
  ``services.common.openapi`` documents these answers on every operation.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import otel_setup
from otel_setup.asgi import NATIVE_TELEMETRY_OFF
from otel_setup.settings import TelemetrySettings

from .cache import Cache, make_cache
from .db import Database
from .faults import Faults
from .faults import router as faults_router
from .openapi import document_errors
from .settings import ServiceSettings

Hook = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_service_app(name: str, settings: ServiceSettings, *, title: str, tables: Any = None,
                       hook: Hook | None = None,
                       telemetry_settings: TelemetrySettings | None = None) -> FastAPI:
    """``tables``: the service's DeclarativeBase (created at start); ``hook``: its own lifespan part."""
    settings.check_production()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(settings.sqlalchemy_url(name),
                                connect_timeout=settings.database_connect_timeout_seconds,
                                statement_timeout=settings.database_statement_timeout_seconds)
        app.state.cache = make_cache(settings.redis_url, settings.cache_prefix, settings.redis_timeout_seconds,
                                     settings.redis_connect_timeout_seconds)
        stack = AsyncExitStack()
        try:
            if tables is not None:
                await app.state.db.create_all(tables)
            await stack.enter_async_context(app.state.faults.followed(app.state.cache))
            if hook is None:
                _freeze_startup_objects()
                yield
            else:
                async with hook(app):
                    _freeze_startup_objects()
                    yield
        finally:
            await stack.aclose()
            await app.state.cache.close()
            await app.state.db.dispose()

    # otel_setup makes the server span and HTTP metrics; FastAPI's own would duplicate them.
    app = FastAPI(title=title, version=_version(), lifespan=lifespan, telemetry=NATIVE_TELEMETRY_OFF)  # type: ignore[arg-type]
    document_errors(app)
    app.state.settings = settings
    app.state.service = name
    app.state.faults = Faults()
    if settings.faults_enabled:
        app.include_router(faults_router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(DBAPIError, _database_unavailable)
    app.add_exception_handler(ConnectionRefusedError, _database_unavailable)

    @app.get("/health", tags=["ops"])
    async def health(request: Request) -> dict[str, str]:
        state = request.app.state
        async with state.db.sessions() as session:
            await session.execute(text("SELECT 1"))
        return {"status": "ok", "service": name, "database": "ok", "cache": state.cache.backend}

    telemetry = otel_setup.configure(name, app=app, settings=telemetry_settings)
    app.state.telemetry = telemetry
    return app


def _freeze_startup_objects() -> None:
    """Move everything built at start (modules, app, models, rule book) out of the collector's
    reach: full collections then walk only what requests allocate, so a GC pause does not eat
    an FDS engine's 30-50 ms budget."""
    gc.collect()
    gc.freeze()


def _version() -> str:
    from otel_setup.settings import _package_version

    return _package_version()


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
              for e in exc.errors()]
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if not content_type.endswith(("/json", "+json")):
        # FastAPI does not parse a JSON body sent as text/plain or a form: say what it expects.
        for error in errors:
            if error["loc"] == ["body"] and error["type"] == "model_attributes_type":
                error["msg"] = "expected a JSON object sent with Content-Type: application/json"
    return JSONResponse({"detail": errors}, status_code=422)


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DBAPIError) and _sqlstate(exc).startswith("22"):
        # SQLSTATE class 22 "data exception": the request held a value the database cannot store
        # or compare (PostgreSQL refuses the NUL character in text). The client's error, not an outage.
        error = {"loc": [], "msg": "a value the database cannot store (such as a NUL character)", "type": "value_error"}
        return JSONResponse({"detail": [error]}, status_code=422)
    otel_setup.capture_exception_with_context(exc, component="database")
    return JSONResponse({"detail": "database unavailable, retry later"}, status_code=503,
                        headers={"Retry-After": "5"})


def _sqlstate(exc: DBAPIError) -> str:
    return str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", ()):
            if key == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _too_large(send, self.max_bytes)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(send, self.max_bytes)


class _TooLarge(HTTPException):
    """An HTTPException, so that FastAPI's body reading passes it on (it turns any other error
    there into a 400 "error parsing the body") and the app's handler answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large_detail(limit))


def _too_large_detail(limit: int) -> str:
    return f"request body larger than {limit} bytes"


async def _too_large(send: Send, limit: int) -> None:
    response = JSONResponse({"detail": _too_large_detail(limit)}, status_code=413)
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


# Dependency aliases so that handlers read as domain code.
async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    delay = request.app.state.faults.get("db-slow")
    if delay:
        await asyncio.sleep(delay)
    async with request.app.state.db.sessions() as session:
        yield session


def from_state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency returning ``app.state.<name>`` (what the lifespan opened), for ``Annotated`` aliases.

    ``async``: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hand-off per
    request and dependency for what is an attribute read."""

    async def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    dependency.__name__ = f"state_{name}"
    return dependency


SessionDep = Annotated[AsyncSession, Depends(_session)]
CacheDep = Annotated[Cache, Depends(from_state("cache"))]
