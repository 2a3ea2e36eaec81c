"""One worker process of a service: uvicorn on a port shared with its siblings (``SO_REUSEPORT``).

    python -m shopfds.serve services.fds.main:app --port 8001 --ready .shopfds/run/run/fds-1.ready

``shopfds up --workers N`` starts N of these per service. Each is a fresh interpreter (spawned,
never forked from a parent that imported the app), so ``otel_setup.configure`` and Sentry run in
the worker itself: its own providers, export threads, ``service.instance.id`` and metrics listener
(``SHOPFDS_METRICS_PORT``, one port per worker). Each binds its own listening socket on the shared
port with ``SO_REUSEPORT``: the kernel spreads new connections over the workers' sockets by hash,
where one shared socket (uvicorn ``--workers``, gunicorn) lets whichever worker wakes first take
them. A worker only starts listening after its lifespan ran, so no connection reaches it before it
is ready; ``--ready`` names a file touched at that moment, which ``shopfds up`` waits for.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import uvicorn


def reuse_port_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(False)
    return sock


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready: Path | None) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.ready is not None:
            self.ready.parent.mkdir(parents=True, exist_ok=True)
            self.ready.touch()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shopfds.serve", description=__doc__.splitlines()[0])
    parser.add_argument("app", help="module:attribute of the ASGI app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--ready", type=Path, default=None, help="file touched once the worker listens")
    args = parser.parse_args(argv)
    sock = reuse_port_socket(args.host, args.port)
    config = uvicorn.Config(args.app, log_level=args.log_level)
    _Server(config, args.ready).run(sockets=[sock])


if __name__ == "__main__":
    main()
