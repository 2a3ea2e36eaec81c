"""Telemetry backends that fail, as real sockets on 127.0.0.1, for the reliability tests.

- :func:`refused`: a closed port (connections refused);
- :class:`BlackHole`: accepts connections and reads everything, never answers;
- :class:`StatusServer`: answers every request with one HTTP status (429, 503, ...).

``tests.receiver.Receiver`` is the healthy one (records, answers 200).
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shopfds.procs import free_port


def refused() -> str:
    """A URL nobody listens on."""
    return f"http://127.0.0.1:{free_port()}"


class BlackHole:
    """A collector or Sentry that hangs: the TCP handshake succeeds, requests are read, no byte
    ever comes back (a stuck proxy, a full backend)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(256)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.connections = 0
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def __enter__(self) -> BlackHole:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()
        with self._lock:
            for conn in self._open:
                conn.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    @staticmethod
    def _read(conn: socket.socket) -> None:
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass


class StatusServer:
    """Reads each request and answers ``status`` with an empty body (no Retry-After, as a
    proxy in front of a collector would)."""

    def __init__(self, status: int) -> None:
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> StatusServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
