"""N worker processes per service, each its own metrics target (``shopfds up --workers N``).

One process per service keeps today's layout: uvicorn on the seed port, ``/metrics`` on the app.
With N > 1, each service runs N ``shopfds.serve`` processes on its public port (``SO_REUSEPORT``,
see ``shopfds.serve``) and each process gets:

- ``service.instance.id`` = ``<service>-<i>`` (``OTEL_RESOURCE_ATTRIBUTES``): stable for the run,
  readable in traces, and the name of its trace-store and log files;
- ``/metrics`` on a port of its own (``SHOPFDS_METRICS_PORT``), so that every scrape reads one
  process's counters whole: behind the shared public port a scrape would reach a random worker.

Those ports are listed in one Prometheus file_sd file per service (``targets/<service>.json``),
written before the workers start and read by ``prometheus/prometheus.local.yml``; each target
carries ``instance`` (its address, Prometheus's default) and ``worker``. ML's first worker starts
first (it trains the default model the FDS loads), then the first worker of each other service
(each creates its tables, never two processes at once for the same tables), then all the others.

Several processes need shared state: PostgreSQL for every row and Redis for claims, limits,
caches and the active-user set. With the embedded default (SQLite files, an in-process cache)
``--workers > 1`` is refused, naming ``DATABASE_URL`` and ``REDIS_URL``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import procs
from .procs import free_port


@dataclass(frozen=True)
class Worker:
    service: str
    index: int  # 1..N
    port: int  # the public port, shared by the service's workers
    metrics_port: int | None  # None: /metrics on the app (one worker)

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port or self.port}"


def check_shared_backends(workers: int, env: dict[str, str]) -> None:
    """``RuntimeError`` when ``workers > 1`` would run on per-process storage."""
    if workers <= 1:
        return
    merged = {**os.environ, **env}
    database, redis = merged.get("DATABASE_URL", ""), merged.get("REDIS_URL", "")
    missing = [name for name, ok in (("DATABASE_URL", database.startswith("postg")),
                                     ("REDIS_URL", redis.startswith(("redis://", "rediss://")))) if not ok]
    if missing:
        raise RuntimeError(
            f"--workers {workers} needs storage the workers share: set {' and '.join(missing)} "
            "(PostgreSQL, Redis). The embedded default, SQLite files and an in-process cache, "
            "belongs to one process; run it with --workers 1.")


def plan(ports: dict[str, int], workers: int) -> dict[str, list[Worker]]:
    return {name: [Worker(name, i, port, free_port() if workers > 1 else None) for i in range(1, workers + 1)]
            for name, port in ports.items()}


def worker_env(worker: Worker, shared: dict[str, str]) -> dict[str, str]:
    if worker.metrics_port is None:
        return shared
    merged = {**os.environ, **shared}
    attrs = ",".join(a for a in (merged.get("OTEL_RESOURCE_ATTRIBUTES", ""),
                                 f"service.instance.id={worker.name}") if a)
    return {**shared, "SHOPFDS_METRICS_PORT": str(worker.metrics_port), "OTEL_RESOURCE_ATTRIBUTES": attrs}


def spawn(worker: Worker, shared: dict[str, str], workdir: Path) -> subprocess.Popen[bytes]:
    """Start one worker detached (its own session), stdout in ``workdir/out/<name>.log``."""
    log = workdir / "out" / f"{worker.name if worker.metrics_port else worker.service}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    ready_file(workdir, worker).unlink(missing_ok=True)
    args = [sys.executable, "-m", "shopfds.serve", f"services.{worker.service}.main:app", "--host", "127.0.0.1",
            "--port", str(worker.port), "--log-level", "warning", "--ready", str(ready_file(workdir, worker))]
    env = {**os.environ, "PYTHONPATH": str(procs.SERVICE_ROOT), **worker_env(worker, shared)}
    with log.open("ab") as out:
        return subprocess.Popen(args, cwd=procs.SERVICE_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def ready_file(workdir: Path, worker: Worker) -> Path:
    return workdir / "run" / f"{worker.name}.ready"


def wait_ready(workdir: Path, started: list[tuple[Worker, subprocess.Popen[bytes]]], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(started)
    while waiting:
        for worker, proc in list(waiting):
            if ready_file(workdir, worker).exists():
                waiting.remove((worker, proc))
            elif proc.poll() is not None:
                raise RuntimeError(f"{worker.name} exited with {proc.returncode} "
                                   f"(see {workdir / 'out'}/{worker.name}.log)")
        if waiting and time.monotonic() > deadline:
            raise TimeoutError(f"{', '.join(w.name for w, _ in waiting)} not ready in {timeout:.0f}s")
        time.sleep(0.1)


def write_targets(directory: Path, workers: dict[str, list[Worker]]) -> dict[str, Path]:
    """One file_sd file per service: every worker's metrics address, labelled by worker."""
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for service, group in workers.items():
        groups = [{"targets": [w.metrics_url.removeprefix("http://")], "labels": {"worker": str(w.index)}}
                  for w in group]
        path = directory / f"{service}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(groups, indent=2))
        os.replace(tmp, path)  # Prometheus never reads a half-written file
        files[service] = path
    return files
