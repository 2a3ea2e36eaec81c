"""The four services as child processes, wired to each other: what ``shopfds up``, the demo and
the system tests start.

ML comes first (the FDS loads its deployed model at start), then FDS, ecommerce and admin. Each
service gets the others' URLs, one shared data directory (its own SQLite file in it) and one local
trace store, so a trace id from any service's exemplar can be looked up across all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .procs import free_port, uvicorn_app

SERVICES = ("ml", "fds", "ecommerce", "admin")
SEED_PORTS = {"ecommerce": 8000, "fds": 8001, "ml": 8002, "admin": 8003}


@dataclass
class Stack:
    urls: dict[str, str] = field(default_factory=dict)
    workdir: Path = Path(".shopfds")

    @property
    def trace_dir(self) -> Path:
        return self.workdir / "traces"


@contextmanager
def run_stack(workdir: Path, *, seed_ports: bool = False, env: dict[str, str] | None = None) -> Iterator[Stack]:
    """Start the four services under ``workdir`` (logs in ``workdir/logs``); stop them on exit."""
    ports = dict(SEED_PORTS) if seed_ports else {name: free_port() for name in SERVICES}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    shared = {
        "SHOPFDS_DATA_DIR": str(workdir / "data"),
        "SHOPFDS_TRACE_STORE_DIR": str(workdir / "traces"),
        **{f"SHOPFDS_{name.upper()}_URL": url for name, url in urls.items()},
        **(env or {}),
    }
    stack = Stack(workdir=workdir)
    with ExitStack() as started:
        for name in SERVICES:
            stack.urls[name] = started.enter_context(
                uvicorn_app(f"services.{name}.main:app", shared, workdir / "logs" / f"{name}.log",
                            port=ports[name]))
        yield stack
