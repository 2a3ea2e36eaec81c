"""Who may read ``/metrics``, and where it is served.

By default ``/metrics`` is a route of the service's own app and open to anyone who reaches it,
which suits the local run and a Prometheus on a private network. Two settings restrict it:

- ``SHOPFDS_METRICS_TOKEN``: every scrape must send ``Authorization: Bearer <token>``; anything
  else gets 401. Prometheus sends it with ``authorization: {credentials: <token>}`` (or
  ``credentials_file``) in the scrape job.
- ``SHOPFDS_METRICS_PORT``: ``/metrics`` moves to its own listener on ``SHOPFDS_METRICS_HOST``
  (default ``127.0.0.1``) and that port only; the public app answers 404 there. Bind the host to
  an interface only the scraper reaches (``0.0.0.0`` in a container whose port is not published).

Both may be combined. A listener that cannot bind (port taken) is reported and ``/metrics`` is
then served nowhere: falling back to the public app would expose what the operator hid.
"""

from __future__ import annotations

import hmac
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry

from .exposition import render
from .guard import report_failure

CHALLENGE = 'Bearer realm="metrics"'


def authorized(header: str | None, token: str | None) -> bool:
    """True when no token is required, or ``header`` is ``Bearer <token>`` (constant time)."""
    if not token:
        return True
    scheme, _, presented = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


class MetricsServer:
    """``/metrics`` on its own port, in a daemon thread (like ``prometheus_client.start_http_server``)."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int, path: str,
                 token: str | None) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != path:
                    self._answer(404, b"not found\n", "text/plain")
                elif not authorized(self.headers.get("Authorization"), token):
                    self._answer(401, b"unauthorized\n", "text/plain", {"WWW-Authenticate": CHALLENGE})
                else:
                    try:
                        body, content_type = render(registry, self.headers.get("Accept"))
                    except Exception as exc:
                        report_failure("metrics-listener", exc)
                        self._answer(500, b"metrics unavailable\n", "text/plain")
                        return
                    self._answer(200, body, content_type)

            def _answer(self, status: int, body: bytes, content_type: str,
                        headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass  # a scrape every few seconds is not worth a log line

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.address = f"{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="otel-setup-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
