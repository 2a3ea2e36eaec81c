"""``shopfds load``: run the Locust traffic headless against a running shop, with a live progress
bar (requests/s, failures) and faults switched on and off at given seconds.

``tps`` is checkouts per second (:mod:`.mix` sizes the users for it). Locust runs in its own
process (it monkey-patches the standard library with gevent); its CSV stats, rewritten every
second, feed the progress bar; its ``_labels.json`` and ``_labels.jsonl`` (:mod:`.locustfile`)
the summary and :attr:`LoadResult.transactions`.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from services.common.faults import parse_spec
from services.common.security import service_headers
from services.common.settings import DEFAULT_JWT_SECRET

from ..procs import ROOT
from . import mix

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
# Which service a fault is switched on.
FAULT_TARGETS = {"cti-slow": "fds", "ml-down": "fds", "db-slow": "ecommerce", "payment-errors": "ecommerce"}


@dataclass
class Fault:
    spec: str
    at: float = 0.0  # seconds after the load starts
    until: float | None = None

    @property
    def name(self) -> str:
        return parse_spec(self.spec)[0]


@dataclass
class LoadResult:
    requests: int = 0
    failures: int = 0
    rps: float = 0.0
    seconds: float = 0.0  # from the first user's start to the stop
    by_name: dict[str, dict[str, float]] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)  # the run's _labels.json
    # one per checkout the FDS decided (the run's _labels.jsonl): transaction_id, scenario,
    # expected (decisions, or None), decision, degraded, risk_factors, is_fraud, label
    transactions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def checkouts(self) -> int:
        return int(self.labels.get("checkouts", 0))

    @property
    def checkouts_per_s(self) -> float:
        return self.checkouts / self.seconds if self.seconds > 0 else 0.0

    @property
    def blocked_by_defence(self) -> dict[str, int]:
        """Attack scenario -> its logins the shop's limiter refused (counted here, not as failures)."""
        return dict(self.labels.get("blocked_by_defence", {}))

    def summary(self, tps: float | None = None) -> list[str]:
        target = f" (target {tps:g})" if tps else ""
        lines = [f"{self.requests} requests, {self.failures} failures, {self.rps:.1f} req/s; "
                 f"{self.checkouts} checkouts, {self.checkouts_per_s:.1f} checkouts/s{target}"]
        if self.blocked_by_defence:
            lines.append("blocked by defence (logins refused by the shop's limiter, 429): "
                         + ", ".join(f"{name} {n}" for name, n in sorted(self.blocked_by_defence.items())))
        lines.append(f"decisions: {self.labels.get('decisions', {})}")
        decided = self.as_expected()
        if decided:
            lines.append("as expected (evaluations with all their evidence): "
                         + ", ".join(f"{name} {ok}/{n}" for name, (ok, n) in sorted(decided.items())))
        return lines

    def as_expected(self) -> dict[str, tuple[int, int]]:
        """Scenario -> (decided as its scenario expects, of the evaluations that were not degraded)."""
        out: dict[str, tuple[int, int]] = {}
        for txn in self.transactions:
            if txn.get("expected") and not txn.get("degraded"):
                ok, n = out.get(txn["scenario"], (0, 0))
                out[txn["scenario"]] = (ok + (txn.get("decision") in txn["expected"]), n + 1)
        return out


def set_fault(urls: dict[str, str], spec: str, on: bool, secret: str = DEFAULT_JWT_SECRET) -> None:
    name, value = parse_spec(spec)
    url = f"{urls[FAULT_TARGETS[name]]}/internal/faults/{name}"
    headers = service_headers(secret, "shopfds-load")
    response = (httpx.put(url, json={"value": f"{value}s" if name != "payment-errors" else f"{value * 100}%"},
                          headers=headers, timeout=5) if on else httpx.delete(url, headers=headers, timeout=5))
    response.raise_for_status()


def run_load(urls: dict[str, str], tps: float, duration: float, faults: list[Fault], workdir: Path,
             console: Console, attacks: list[str] | None = None) -> LoadResult:
    """``tps`` checkouts a second for ``duration`` seconds; ``attacks``: the fraud scenarios to
    play (default ``SHOPFDS_LOAD_ATTACKS``, else all); ValueError for an unknown one."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SHOPFDS_LOAD_FDS_URL": urls["fds"],
           "SHOPFDS_LOAD_ADMIN_URL": urls["admin"]}
    if attacks is not None:
        env[mix.ATTACKS_ENV] = ",".join(attacks)
    users, pace = mix.users_for(tps, mix.attacks(env))
    env["SHOPFDS_LOAD_PACE"] = str(pace)
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = workdir / "load"
    args = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users), "-r", str(users),
            "-t", f"{max(1, round(duration))}s", "--host", urls["ecommerce"], "--csv", str(prefix), "--only-summary",
            "--stop-timeout", "5", "--exit-code-on-error", "0", "--loglevel", "WARNING"]
    secret = os.environ.get("SHOPFDS_JWT_SECRET", DEFAULT_JWT_SECRET)
    with (workdir / "locust.log").open("wb") as log:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _watch(proc, prefix, duration, faults, urls, secret, console)
        finally:
            for fault in faults:
                _switch(urls, fault.spec, False, secret, console, quiet=True)
            if proc.poll() is None:
                proc.terminate()
                proc.wait(15)
    if proc.returncode not in (0, None):
        raise RuntimeError(f"locust exited with {proc.returncode}; see {workdir / 'locust.log'}")
    return _result(prefix)


def _watch(proc: subprocess.Popen[bytes], prefix: Path, duration: float, faults: list[Fault],
           urls: dict[str, str], secret: str, console: Console) -> None:
    pending_on = sorted(faults, key=lambda f: f.at)
    pending_off = sorted([f for f in faults if f.until is not None], key=lambda f: f.until or 0)
    columns = (TextColumn("[bold]load"), BarColumn(), TextColumn("{task.fields[stats]}"), TimeRemainingColumn())
    start = time.monotonic()
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("load", total=duration, stats="starting")
        while proc.poll() is None:
            elapsed = time.monotonic() - start
            while pending_on and pending_on[0].at <= elapsed:
                _switch(urls, pending_on.pop(0).spec, True, secret, console)
            while pending_off and (pending_off[0].until or 0) <= elapsed:
                _switch(urls, pending_off.pop(0).spec, False, secret, console)
            row = _aggregated(prefix)
            stats = (f"{row.get('Requests/s', '0')[:6]} req/s  {row.get('Request Count', '0')} requests  "
                     f"{row.get('Failure Count', '0')} failures") if row else "starting"
            progress.update(bar, completed=min(elapsed, duration), stats=stats)
            time.sleep(0.5)
        progress.update(bar, completed=duration)


def _switch(urls: dict[str, str], spec: str, on: bool, secret: str, console: Console, quiet: bool = False) -> None:
    try:
        set_fault(urls, spec, on, secret)
        if not quiet:
            console.print(f"[yellow]fault {'on' if on else 'off'}:[/] {spec}")
    except (httpx.HTTPError, KeyError) as exc:
        if not quiet:
            console.print(f"[red]could not switch fault {spec}: {exc}[/]")


def _rows(prefix: Path) -> list[dict[str, str]]:
    path = Path(f"{prefix}_stats.csv")
    if not path.exists():
        return []
    try:
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    except (OSError, csv.Error):
        return []


def _aggregated(prefix: Path) -> dict[str, str]:
    return next((r for r in _rows(prefix) if r.get("Name") == "Aggregated"), {})


def _result(prefix: Path) -> LoadResult:
    rows = _rows(prefix)
    total = next((r for r in rows if r.get("Name") == "Aggregated"), {})
    by_name = {f"{r['Type']} {r['Name']}": {"requests": _num(r["Request Count"]), "failures": _num(r["Failure Count"]),
                                            "p50_ms": _num(r.get("50%")), "p95_ms": _num(r.get("95%"))}
               for r in rows if r.get("Name") != "Aggregated"}
    labels_path, lines_path = Path(f"{prefix}_labels.json"), Path(f"{prefix}_labels.jsonl")
    labels = json.loads(labels_path.read_text()) if labels_path.exists() else {}
    transactions = ([json.loads(line) for line in lines_path.read_text().splitlines() if line.strip()]
                    if lines_path.exists() else [])
    return LoadResult(requests=int(_num(total.get("Request Count"))), failures=int(_num(total.get("Failure Count"))),
                      rps=_num(total.get("Requests/s")), seconds=float(labels.get("seconds", 0.0)), by_name=by_name,
                      labels=labels, transactions=transactions)


def _num(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "", "N/A") else 0.0
    except ValueError:
        return 0.0
