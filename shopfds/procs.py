"""Child processes the CLI and the tests start: uvicorn apps and a local Prometheus."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
# Where the services' code runs from: this checkout, or an earlier commit's worktree when
# ``bench.before_after`` measures it under this harness.
SERVICE_ROOT = ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up in {timeout}s")


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@contextmanager
def uvicorn_app(target: str, env: dict[str, str], log: Path, port: int | None = None,
                pids: dict[str, int] | None = None) -> Iterator[str]:
    """Run ``target`` under uvicorn until the block ends; its pid goes to ``pids[target]`` when given."""
    port = port or free_port()
    full_env = {**os.environ, "PYTHONPATH": str(SERVICE_ROOT), **env}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"], cwd=SERVICE_ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
        if pids is not None:
            pids[target] = proc.pid
        try:
            wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(proc)


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def wait_scraped(prom: str, expected: int, timeout: float = 30.0) -> None:
    """Ready is not enough: discovery adds targets seconds later. Wait for a first good scrape."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        targets = httpx.get(f"{prom}/api/v1/targets", timeout=2).json()["data"]["activeTargets"]
        if len(targets) >= expected and all(t["health"] == "up" for t in targets):
            return
        time.sleep(0.2)
    raise TimeoutError(f"Prometheus at {prom} did not scrape its {expected} targets in {timeout}s")


@contextmanager
def prometheus(targets: list[str], workdir: Path, interval: str = "1s",
               token: str | None = None) -> Iterator[str]:
    """A Prometheus with exemplar storage scraping ``targets`` (needs the binary), sending
    ``token`` as a bearer token when given (``SHOPFDS_METRICS_TOKEN``)."""
    binary = prometheus_binary()
    if binary is None:
        raise FileNotFoundError("prometheus binary not found")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    hosts = ", ".join(f"'{t.removeprefix('http://')}'" for t in targets)
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n"
        f"  scrape_interval: {interval}\n"
        "scrape_configs:\n"
        "  - job_name: shopfds\n"
        f"    static_configs: [{{targets: [{hosts}]}}]\n"
        + (f"    authorization: {{credentials: {json.dumps(token)}}}\n" if token else "")
    )
    with (workdir / "prometheus.log").open("wb") as out:
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--enable-feature=exemplar-storage"],
            stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/-/ready", timeout=30, proc=proc)
            wait_scraped(url, len(targets))
            yield url
        finally:
            stop(proc)
