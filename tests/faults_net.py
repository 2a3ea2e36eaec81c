"""Network faults for tests: a TCP proxy on 127.0.0.1 in front of a real server that a test cuts.

    async with TcpProxy("127.0.0.1", 5432) as pg:      # the service connects to pg.port
        ...
        await pg.cut()          # live connections reset, new ones refused: the server is "down"
        await pg.restore()      # the same port accepts again
        pg.cut_on(b"INSERT INTO ecommerce_payments")   # cut the moment a client sends this
        await pg.black_hole()   # connections accepted (and live ones kept open), nothing answered
        pg.black_hole_on(b"UPDATE ecommerce_orders")    # go silent the moment a client sends this
        pg.reset_after_reply_to(b"COMMIT")   # the server does it; its reply is lost with the connection

``reset_after_reply_to`` is the other half of an outage: the statement reaches the server and is
done there (the reply proves it), then that one connection is reset before the reply reaches the
client, which cannot tell a commit that happened from one that did not. The proxy stays up.
``cut_on`` makes a mid-request outage land at a chosen point of a flow, deterministically: the
proxy sees the bytes a client sends (SQL text travels in clear in the PostgreSQL protocol, as do
Redis commands) and cuts before forwarding the matching chunk, so the server never sees it.
asyncpg sends a statement's text only the first time a connection prepares it, so a pattern
trips on a statement that connection has not run yet; ``tripped`` tells the test it did.
A black hole is the outage no refusal announces (a hung server, a dropped route, a full
listen backlog behind a load balancer): every byte either way is swallowed, so only the
client's own timeouts end a request; ``restore`` resets the connections it held.
Nothing of the project is replaced: the service talks to the real PostgreSQL or Redis through
a real socket that really breaks.

``Switchable(handler)`` is a TCP server on one port that a test takes down (the port refuses
connections) and brings back; ``served(app)`` runs an ASGI app on a real port of 127.0.0.1
(uvicorn, in this event loop) until its block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import uvicorn

from shopfds.procs import free_port


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections = 0  # accepted since start, for tests that check a client reconnected
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._trigger: bytes | None = None
        self._trigger_silent = False
        self._trigger_after_reply = False
        self.silent = False  # black hole: accept, forward nothing
        self.tripped = asyncio.Event()

    @property
    def up(self) -> bool:
        return self._server is not None

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def restore(self) -> None:
        if self.silent:  # the held connections are dead to their clients: reset them
            self.silent = False
            for writer in list(self._links):
                writer.transport.abort()
            self._links.clear()
        if self._server is None:
            await self.start()

    async def black_hole(self) -> None:
        """Keep accepting, keep live connections open, forward and answer nothing."""
        self.silent = True
        if self._server is None:
            await self.start()

    async def cut(self) -> None:
        """Refuse new connections and reset the live ones (RST, as a crashed host or cable would)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()
        if server is not None:
            await server.wait_closed()

    def cut_on(self, pattern: bytes) -> None:
        """Cut everything when a client next sends ``pattern`` (that chunk is not forwarded)."""
        self.tripped.clear()
        self._trigger, self._trigger_silent, self._trigger_after_reply = pattern, False, False

    def reset_after_reply_to(self, pattern: bytes) -> None:
        """Forward the chunk holding ``pattern``; when the server answers it, reset that connection
        (both sides) instead of forwarding the answer. Other connections are left alone."""
        self.tripped.clear()
        self._trigger, self._trigger_silent, self._trigger_after_reply = pattern, False, True

    def black_hole_on(self, pattern: bytes) -> None:
        """Go silent (``black_hole``) when a client next sends ``pattern`` (that chunk is swallowed)."""
        self.tripped.clear()
        self._trigger, self._trigger_silent, self._trigger_after_reply = pattern, True, False

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._server is None:  # accepted in the instant of a cut
            client_w.transport.abort()
            return
        if self.silent:  # held open, read and dropped, until a restore resets it
            self._links.add(client_w)
            with contextlib.suppress(ConnectionError, OSError):
                while await client_r.read(65536):
                    pass
            self._links.discard(client_w)
            client_w.transport.abort()
            return
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self.connections += 1
        self._links.update((client_w, server_w))
        link = {"awaiting_reply": False}  # this connection's statement was sent; its reply is dropped
        await asyncio.gather(self._pipe(client_r, server_w, link, upstream=True),
                             self._pipe(server_r, client_w, link, peer=server_w))
        for writer in (client_w, server_w):
            self._links.discard(writer)
            writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: dict[str, bool],
                    upstream: bool = False, peer: asyncio.StreamWriter | None = None) -> None:
        tail = b""
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await reader.read(65536):
                if not upstream and link["awaiting_reply"]:  # the server is done: the client never hears
                    self.tripped.set()
                    for end in (writer, peer):
                        if end is not None:
                            end.transport.abort()
                    return
                if upstream and self._trigger is not None and self._trigger_after_reply:
                    if self._trigger in chunk:  # the whole statement is forwarded, so in one chunk
                        self._trigger = None
                        link["awaiting_reply"] = True
                elif upstream and self._trigger is not None and self._trigger in tail + chunk:
                    self._trigger = None
                    self.tripped.set()
                    if self._trigger_silent:
                        self.silent = True
                        continue
                    await self.cut()
                    return
                tail = chunk[-256:]
                if self.silent:
                    continue
                writer.write(chunk)
                await writer.drain()
        # One side ended: end the other, so the pair does not outlive it.
        writer.transport.abort()

    async def close(self) -> None:
        await self.cut()

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


class Switchable:
    """``handler`` (as for ``asyncio.start_server``) served on one port of 127.0.0.1, down and up again."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def up(self) -> None:
        self._server = await asyncio.start_server(self.handler, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


@contextlib.asynccontextmanager
async def served(app: Any, port: int | None = None) -> AsyncIterator[str]:
    """``app`` (lifespan included) on ``http://127.0.0.1:port`` until the block ends; then the port is closed."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port or free_port(), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise RuntimeError(f"server on port {config.port} did not start")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        await task
