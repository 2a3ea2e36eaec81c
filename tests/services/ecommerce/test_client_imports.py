"""The ecommerce -> FDS call goes through httpx and httpcore, which ask which event loop runs on
every pool operation by importing ``sniffio``. Without it installed each ask is a failed import
that searches the whole of ``sys.path`` (about 110 µs, several times a request): a dependency of
the project, checked here by what a request does, not by what is installed.
"""

from __future__ import annotations

import asyncio
import builtins
from typing import Any

import httpx
import pytest

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers every request on the connection with ``{}``."""
    try:
        while head := await reader.readuntil(b"\r\n\r\n"):
            length = next((int(line.split(b":", 1)[1]) for line in head.lower().split(b"\r\n")
                           if line.startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


@pytest.mark.asyncio
async def test_a_pooled_request_attempts_no_failing_import(monkeypatch: pytest.MonkeyPatch) -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    failed: list[str] = []
    real_import = builtins.__import__

    def counting_import(name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return real_import(name, *args, **kwargs)
        except ImportError:
            failed.append(name)
            raise

    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/")).status_code == 200  # the pool and its connection exist
            monkeypatch.setattr(builtins, "__import__", counting_import)
            for _ in range(3):
                response = await client.post("/v1/fds/evaluate", json={"transaction_id": "t"})
                assert response.status_code == 200 and response.json() == {}
            monkeypatch.undo()
    finally:
        server.close()
        await server.wait_closed()
    assert failed == []
