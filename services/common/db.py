"""Async SQLAlchemy 2: one engine per service, PostgreSQL (asyncpg) or the SQLite default.

Each service declares its tables on its own ``DeclarativeBase`` subclass so that
``create_all`` creates only that service's tables, even when the four share one database.
A database that cannot be reached is a 503 with a clear message (``app.py``), never a 500: asyncpg
raises a failed connect as a bare ``OSError`` (refused, reset) or its own error (server starting
up or shutting down), which SQLAlchemy passes through unwrapped, so ``_connect`` turns each into
the ``OperationalError`` a refused connection is with other drivers.

Nothing waits unbounded on a database that accepts connections and never answers: a connect
gives up after ``SHOPFDS_DATABASE_CONNECT_TIMEOUT_SECONDS`` (instead of asyncpg's 60 s), and a
statement after ``SHOPFDS_DATABASE_STATEMENT_TIMEOUT_SECONDS`` on both sides of the wire: asyncpg's
``command_timeout`` for a server that is silent, PostgreSQL's ``statement_timeout`` for one that
is slow. asyncpg raises its timeout as a bare ``TimeoutError``: ``_timed_out`` turns it into an
``OperationalError`` (a 503) and marks the connection a disconnect, so the pool discards it
rather than trying to roll it back over the same silent socket. The transaction it was in was
never committed: nothing of it is written. SQLite's ``timeout`` (the wait for its write lock) is
the statement timeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Dialect, ExceptionContext, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext import asyncio as sa_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase

CONNECT_TIMEOUT_SECONDS = 5.0
STATEMENT_TIMEOUT_SECONDS = 5.0


class Database:
    def __init__(self, url: str, *, echo: bool = False, connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
                 statement_timeout: float = STATEMENT_TIMEOUT_SECONDS) -> None:
        parsed = make_url(url)
        self.url = url
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, object] = {"echo": echo, "pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": statement_timeout}
        else:
            server = {"statement_timeout": str(int(statement_timeout * 1000))}
            kwargs.update(pool_size=20, max_overflow=20, pool_timeout=connect_timeout,
                          connect_args={"timeout": connect_timeout, "command_timeout": statement_timeout,
                                        "server_settings": server})
        # Looked up at call time: tracing (otel_setup.dependencies) wraps the module attribute.
        self.engine: AsyncEngine = sa_asyncio.create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            event.listen(self.engine.sync_engine, "do_connect", _connect)
            _translate_timeouts(self.engine.dialect)
            event.listen(self.engine.sync_engine, "handle_error", _timed_out)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def create_all(self, base: type[DeclarativeBase]) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(base.metadata.create_all)

    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


def _connect(dialect: Dialect, _record: object, cargs: tuple[object, ...], cparams: dict[str, object]) -> object:
    try:
        return dialect.connect(*cargs, **cparams)
    except dialect.loaded_dbapi.Error:
        raise  # already a driver error: SQLAlchemy wraps it
    except Exception as exc:  # OSError, TimeoutError, asyncpg's PostgresError at connect
        raise OperationalError("connect", None, exc) from exc


def _translate_timeouts(dialect: Dialect) -> None:
    """asyncpg's ``TimeoutError`` as the DBAPI's ``OperationalError``, like its own errors.

    SQLAlchemy's asyncpg adapter passes a bare ``TimeoutError`` through untranslated, so the pool's
    pre-ping (which only handles DBAPI errors) would raise it into the request instead of replacing
    the connection. The adapter's translation table is the one place every asyncpg call goes through.
    """
    dbapi = dialect.loaded_dbapi
    dbapi._asyncpg_error_translate[TimeoutError] = dbapi.OperationalError


def _timed_out(context: ExceptionContext) -> None:
    if isinstance(context.original_exception.__cause__, TimeoutError):
        context.is_disconnect = True  # the pool discards it: no rollback over a silent socket


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    # WAL lets readers run beside the one writer; NORMAL sync is safe with WAL.
    cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
