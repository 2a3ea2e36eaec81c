"""The four services (and a local Prometheus) as child processes, wired to each other.

``run_stack`` is a context manager for tests and benchmarks; ``up`` / ``down`` start and stop
the same processes detached, for ``shopfds up`` / ``shopfds down``, keeping their pids in
``<workdir>/run/state.json`` so that ``down`` stops exactly what ``up`` started.

ML comes first (the FDS loads its deployed model at start), then FDS, ecommerce and admin. Each
service gets the others' URLs, one shared data directory (its own SQLite file in it) and one
local trace store and log directory, so a trace id from any exemplar can be looked up across all.
``workers=N`` runs N processes of each service (``shopfds.workers``); Prometheus then finds every
process's metrics port in the file_sd files of ``<workdir>/prometheus/targets``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import procs
from . import workers as procs_workers
from .procs import ROOT, free_port, prometheus_binary, stop, uvicorn_app, wait_http, wait_scraped
from .rules import DEFAULT_RUNBOOK_BASE_URL, rule_files, runbook_base_url
from .workers import Worker

SERVICES = ("ml", "fds", "ecommerce", "admin")
SEED_PORTS = {"ecommerce": 8000, "fds": 8001, "ml": 8002, "admin": 8003}
PROMETHEUS_PORT = 9090
LOCAL_PROMETHEUS = ROOT / "prometheus" / "prometheus.local.yml"


@dataclass
class Stack:
    urls: dict[str, str] = field(default_factory=dict)
    workdir: Path = Path(".shopfds")
    prometheus: str | None = None
    pids: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)  # worker name -> its /metrics base URL

    @property
    def trace_dir(self) -> Path:
        return self.workdir / "traces"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"


def service_env(workdir: Path, urls: dict[str, str], extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "SHOPFDS_DATA_DIR": str(workdir / "data"),
        "SHOPFDS_TRACE_STORE_DIR": str(workdir / "traces"),
        "SHOPFDS_LOG_DIR": str(workdir / "logs"),
        # The load generator on this host stands in for the shop's reverse proxy: it forwards
        # each simulated shopper's own address.
        "SHOPFDS_TRUSTED_PROXIES": "127.0.0.1",
        **{f"SHOPFDS_{name.upper()}_URL": url for name, url in urls.items()},
        **(extra or {}),
    }


def _urls(ports: dict[str, int]) -> dict[str, str]:
    return {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}


@contextmanager
def run_stack(workdir: Path, *, seed_ports: bool = False, env: dict[str, str] | None = None,
              workers: int = 1) -> Iterator[Stack]:
    """Start the four services under ``workdir`` (stdout in ``workdir/out``); stop them on exit."""
    procs_workers.check_shared_backends(workers, env or {})
    ports = dict(SEED_PORTS) if seed_ports else {name: free_port() for name in SERVICES}
    urls = _urls(ports)
    shared = service_env(workdir, urls, env)
    stack = Stack(workdir=workdir)
    with ExitStack() as started:
        if workers > 1:
            stack.urls = urls
            # each worker is stopped on exit from the moment it is spawned, even if a later one fails
            _start_workers(workdir, ports, workers, shared, stack, lambda proc: started.callback(stop, proc))
            yield stack
            return
        for name in SERVICES:
            target = f"services.{name}.main:app"
            stack.urls[name] = started.enter_context(
                uvicorn_app(target, shared, workdir / "out" / f"{name}.log", port=ports[name], pids=stack.pids))
            stack.pids[name] = stack.pids.pop(target)
            stack.metrics[name] = stack.urls[name]
        yield stack


Started = dict[str, list[tuple[Worker, subprocess.Popen[bytes]]]]


def _start_workers(workdir: Path, ports: dict[str, int], workers: int, shared: dict[str, str], stack: Stack,
                   on_start: Callable[[subprocess.Popen[bytes]], object] | None = None) -> Started:
    """Every worker of every service, in three waves: ML's first worker (the FDS loads the deployed
    model at start); the first worker of each other service (each creates its tables: never two
    processes at once for the same tables); then all the others at once.

    The file_sd files are written first; ``on_start`` gets each process as soon as it is spawned
    (to save the pids, to stop it on the way out)."""
    plan = procs_workers.plan(ports, workers)
    procs_workers.write_targets(workdir / "prometheus" / "targets", plan)
    waves = [[plan["ml"][0]], [plan[name][0] for name in SERVICES if name != "ml"],
             [w for name in SERVICES for w in plan[name][1:]]]
    started: Started = {name: [] for name in SERVICES}
    for wave in waves:
        spawned = []
        for worker in wave:
            proc = procs_workers.spawn(worker, shared, workdir)
            spawned.append((worker, proc))
            started[worker.service].append((worker, proc))
            stack.pids[worker.name if workers > 1 else worker.service] = proc.pid
            stack.metrics[worker.name if workers > 1 else worker.service] = worker.metrics_url
            if on_start is not None:
                on_start(proc)
        procs_workers.wait_ready(workdir, spawned)
    return started


def metrics_token(env: dict[str, str] | None = None) -> str | None:
    """The bearer token the services require on ``/metrics`` (``SHOPFDS_METRICS_TOKEN``), if any."""
    return (env or {}).get("SHOPFDS_METRICS_TOKEN") or os.environ.get("SHOPFDS_METRICS_TOKEN") or None


def prometheus_config(urls: dict[str, str], workdir: Path, interval: str = "5s", token: str | None = None,
                      targets: dict[str, Path] | None = None, runbook_base: str = DEFAULT_RUNBOOK_BASE_URL) -> Path:
    """``prometheus/prometheus.local.yml`` (same jobs and rules) reading the file_sd ``targets`` of
    each job (by default one per service, at ``urls``), sending ``token`` as the bearer token of
    every scrape when the services require one; the rules' runbook links under ``runbook_base``."""
    config: dict[str, Any] = yaml.safe_load(LOCAL_PROMETHEUS.read_text())
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    config["global"].pop("scrape_timeout", None)
    config["rule_files"] = rule_files(workdir, runbook_base)
    config.pop("alerting", None)  # no Alertmanager in the embedded run
    jobs = [job for job in config["scrape_configs"] if job["job_name"] in urls]
    if targets is None:  # one process per service, on its URL
        targets = procs_workers.write_targets(workdir / "targets", procs_workers.plan(_ports(urls), 1))
    for job in jobs:
        # file_sd: one target per worker process (shopfds.workers)
        job["file_sd_configs"] = [{"files": [str(targets[job["job_name"]].resolve())]}]
        if token:
            job["authorization"] = {"credentials": token}
    config["scrape_configs"] = jobs
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _ports(urls: dict[str, str]) -> dict[str, int]:
    return {name: int(url.rsplit(":", 1)[1].rstrip("/")) for name, url in urls.items()}


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(args, cwd=procs.SERVICE_ROOT,
                                env={**os.environ, "PYTHONPATH": str(procs.SERVICE_ROOT), **env},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def up(workdir: Path, *, with_prometheus: bool = True, env: dict[str, str] | None = None,
       interval: str = "5s", seed_ports: bool = True, workers: int = 1) -> Stack:
    """Start detached (seed ports, or free ones), ``workers`` processes per service; raise
    ``RuntimeError`` naming a taken port, per-process storage with workers, or a failed start."""
    state = workdir / "run" / "state.json"
    if state.exists():
        raise RuntimeError(f"already up (see {state}); run `shopfds down --workdir {workdir}` first")
    procs_workers.check_shared_backends(workers, env or {})
    want_prom = with_prometheus and prometheus_binary() is not None
    try:
        runbook_base = runbook_base_url(env=env)
    except ValueError as exc:
        raise RuntimeError(str(exc)) from exc
    ports = dict(SEED_PORTS) if seed_ports else {name: free_port() for name in SERVICES}
    ports_all = {**ports, **({"prometheus": PROMETHEUS_PORT if seed_ports else free_port()} if want_prom else {})}
    taken = [f"{name} :{port}" for name, port in ports_all.items() if port_in_use(port)]
    if taken:
        raise RuntimeError(f"port taken: {', '.join(taken)}; stop what uses it or run `shopfds down`")
    urls = _urls(ports)
    if runbook_base == DEFAULT_RUNBOOK_BASE_URL and ports["admin"] != SEED_PORTS["admin"]:
        runbook_base = f"{urls['admin']}/runbooks/"  # the admin serving them is on another port
    shared = service_env(workdir, urls, env)
    stack = Stack(urls=urls, workdir=workdir)
    try:
        _start_workers(workdir, ports, workers, shared, stack, lambda _: _write_state(state, stack))
        if want_prom:
            stack.prometheus = _start_prometheus(workdir, stack, interval, ports_all["prometheus"],
                                                 metrics_token(shared), runbook_base)
            _write_state(state, stack)
    except Exception:
        down(workdir)
        raise
    return stack


def _start_prometheus(workdir: Path, stack: Stack, interval: str, port: int, token: str | None = None,
                      runbook_base: str = DEFAULT_RUNBOOK_BASE_URL) -> str:
    binary = prometheus_binary()
    assert binary is not None
    targets = {name: workdir / "prometheus" / "targets" / f"{name}.json" for name in stack.urls}
    config = prometheus_config(stack.urls, workdir / "prometheus", interval, token, targets, runbook_base)
    url = f"http://127.0.0.1:{port}"
    proc = _spawn([binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'prometheus' / 'tsdb'}",
                   f"--web.listen-address=127.0.0.1:{port}", "--enable-feature=exemplar-storage"],
                  workdir / "out" / "prometheus.log", {})
    stack.pids["prometheus"] = proc.pid
    wait_http(f"{url}/-/ready", timeout=30, proc=proc)
    wait_scraped(url, len(stack.metrics))
    return url


def _write_state(path: Path, stack: Stack) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pids": stack.pids, "urls": stack.urls, "metrics": stack.metrics,
                                "prometheus": stack.prometheus}, indent=2))


def read_state(workdir: Path) -> dict[str, Any] | None:
    path = workdir / "run" / "state.json"
    return json.loads(path.read_text()) if path.exists() else None


def down(workdir: Path, timeout: float = 10.0) -> list[str]:
    """Stop what ``up`` started (TERM, then KILL after ``timeout``); return the names stopped."""
    state = read_state(workdir)
    if state is None:
        return []
    pids: dict[str, int] = state["pids"]
    for pid in pids.values():
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids.values()):
        time.sleep(0.1)
    for pid in pids.values():
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
    (workdir / "run" / "state.json").unlink(missing_ok=True)
    return list(pids)


def _signal_group(pid: int, sig: int) -> None:
    if not _ours(pid):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # each child leads its own session: its group is its pid


def _ours(pid: int) -> bool:
    """Guard against a recycled pid: only signal a process that is still uvicorn or Prometheus."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return not Path("/proc").is_dir()  # no procfs: trust the state file
    return any(name in cmdline for name in (b"uvicorn", b"shopfds.serve", b"prometheus"))


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap our own children
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
