"""Soak: the shop under load for a bounded time on PostgreSQL + Redis, with faults cycling.

    python -m bench.soak [--duration SECONDS] [--workers N] [--json FILE]      (make soak: 20 minutes)

The four services run as processes on a PostgreSQL database and a Redis server of their own
(``redis-server`` on a free port, so that restarting it disturbs nobody else). Shoppers fill
carts and check out without pause (N concurrent) while, after a warm-up, one fault at a time is
on for a window and then off for as long: ``cti-slow``, ``ml-down``, ``db-slow`` and
``payment-errors`` (``/internal/faults``), the database's connections killed with
``pg_terminate_backend`` every 2 s, and the Redis server killed and started again. After the
load the faults are cleared and the reconciler (fast settings here) gets its rounds. Then it
prints, and checks:

- every order terminal or in the staff review list, no payment ``pending``;
- every FDS verdict an order holds written once in ``fds_evaluations``;
- the services' counters (what Prometheus scrapes from ``/metrics``) equal the database's counts:
  orders created, evaluations stored;
- each service's RSS within 10 % of its value after the warm-up;
- no 5xx outside the fault windows (each window counts until 5 s after it ends).

It exits 1 when a check fails. ``make soak`` runs it for 20 minutes; CI runs a 2-minute version
(``tests/reliability/test_soak_short.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from bench.checkout import PG_SERVER, rss_mb, scratch_database
from services.common.security import issue_token
from services.common.settings import DEFAULT_JWT_SECRET
from shopfds.procs import ROOT, free_port, stop, wait_http
from shopfds.stack import SERVICES, service_env

FAULTS = ("cti-slow", "ml-down", "db-slow", "payment-errors", "pg-terminate", "redis-restart")
HTTP_FAULTS = {"cti-slow": ("fds", "150ms"), "ml-down": ("fds", None), "db-slow": ("ecommerce", "50ms"),
               "payment-errors": ("ecommerce", "20%")}
GRACE_S = 5.0
RSS_TOLERANCE = 0.10
TERMINAL = {"processing", "shipped", "delivered", "cancelled"}
# Test card numbers (valid checksums), one per shopper in turn: the FDS's per-card velocity
# rules would otherwise block nearly every checkout after the first minutes.
CARDS = ("4111111111111111", "5555555555554444", "4012888888881881", "6011111111111117",
         "5105105105105100", "4242424242424242", "4000056655665556", "378282246310005")
err = Console(stderr=True)


@contextmanager
def own_redis(workdir: Path) -> Iterator[tuple[str, Any]]:
    port = free_port()
    args = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(workdir)]

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        return proc

    state = {"proc": start()}

    def restart(kill: bool) -> None:
        if kill:
            state["proc"].kill()
            state["proc"].wait(5)
        else:
            state["proc"] = start()

    try:
        yield f"redis://127.0.0.1:{port}/0", restart
    finally:
        state["proc"].kill()
        state["proc"].wait(5)


@contextmanager
def own_database() -> Iterator[str]:
    with scratch_database("shopfds_soak") as name:
        yield name


@contextmanager
def services(workdir: Path, env: dict[str, str]) -> Iterator[tuple[dict[str, str], dict[str, int]]]:
    """The four services as uvicorn processes; a start may take a minute on a busy machine."""
    urls = {name: f"http://127.0.0.1:{free_port()}" for name in SERVICES}
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **service_env(workdir, urls, env)}
    (workdir / "out").mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in SERVICES:
            with (workdir / "out" / f"{name}.log").open("wb") as out:
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "uvicorn", f"services.{name}.main:app", "--host", "127.0.0.1",
                     "--port", urls[name].rsplit(":", 1)[1], "--log-level", "warning"],
                    cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
            wait_http(f"{urls[name]}/health", timeout=120, proc=procs[name])
        yield urls, {name: proc.pid for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            stop(proc)


class Load:
    """Shoppers checking out in a loop; every answer kept as (time, path, status)."""

    def __init__(self, url: str, workers: int) -> None:
        self.url = url
        self.workers = workers
        self.answers: list[tuple[float, str, int]] = []
        self.stop = asyncio.Event()

    async def _post(self, client: httpx.AsyncClient, path: str, **kwargs: Any) -> httpx.Response | None:
        try:
            response = await client.post(path, **kwargs)
        except httpx.HTTPError:
            self.answers.append((time.monotonic(), path, 599))  # no answer at all counts as a 5xx
            return None
        self.answers.append((time.monotonic(), path, response.status_code))
        return response

    async def shopper(self, client: httpx.AsyncClient, n: int) -> None:
        email = f"soak-{n}-{uuid.uuid4().hex[:6]}@example.com"
        auth: dict[str, str] = {}
        while not self.stop.is_set():
            if not auth:
                await self._post(client, "/v1/auth/register", json={"email": email, "password": "s3cret-pass",
                                                                    "name": "Soak"})
                login = await self._post(client, "/v1/auth/login", json={"email": email, "password": "s3cret-pass"})
                if login is None or login.status_code != 200:
                    await asyncio.sleep(0.5)
                    continue
                auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
            await self._post(client, "/v1/cart/items", json={"product_id": random.randint(1, 20), "quantity": 1},
                             headers=auth)
            card = {"method": "card", "card_number": CARDS[n % len(CARDS)], "expiry": "12/99", "cvv": "123"}
            await self._post(client, "/v1/orders", headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
                             json={"payment": card,
                                   "billing_country": "KR", "shipping_country": "KR", "device_id": f"d-{n}"})

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            await asyncio.gather(*(self.shopper(client, n) for n in range(self.workers)))


class Faults:
    def __init__(self, urls: dict[str, str], database: str, redis_restart: Any) -> None:
        self.urls = urls
        self.database = database
        self.redis_restart = redis_restart
        token = issue_token(DEFAULT_JWT_SECRET, "soak", "admin", 86_400)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.windows: list[tuple[str, float, float]] = []

    async def window(self, name: str, seconds: float) -> None:
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=10) as client:
            if name in HTTP_FAULTS:
                service, value = HTTP_FAULTS[name]
                await client.put(f"{self.urls[service]}/internal/faults/{name}", json={"value": value},
                                 headers=self.headers)
                await asyncio.sleep(seconds)
                await client.delete(f"{self.urls[service]}/internal/faults/{name}", headers=self.headers)
            elif name == "pg-terminate":
                while time.monotonic() - started < seconds:
                    await self._terminate()
                    await asyncio.sleep(2)
            else:
                self.redis_restart(kill=True)
                await asyncio.sleep(seconds)
                self.redis_restart(kill=False)
        self.windows.append((name, started, time.monotonic()))

    async def _terminate(self) -> None:
        conn = await asyncpg.connect(f"{PG_SERVER}/postgres")
        try:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = $1 AND pid <> pg_backend_pid()", self.database)
        finally:
            await conn.close()

    def covers(self, moment: float) -> str | None:
        return next((name for name, start, end in self.windows if start <= moment <= end + GRACE_S), None)


async def database_counts(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        statuses = await conn.fetch("SELECT status, next_action, count(*) AS n FROM ecommerce_orders "
                                    "GROUP BY status, next_action")
        pending_payments = await conn.fetchval("SELECT count(*) FROM ecommerce_payments WHERE status = 'pending'")
        evaluations = await conn.fetchval("SELECT count(*) FROM fds_evaluations")
        # Verdicts the FDS gave (not the fail policy's stand-in) that have no stored evaluation.
        unwritten_ids = [r["transaction_id"] for r in await conn.fetch(
            "SELECT o.fds::jsonb ->> 'transaction_id' AS transaction_id FROM ecommerce_orders o "
            "WHERE o.fds IS NOT NULL "
            "AND NOT (o.fds::jsonb -> 'risk_factors') ? 'fds_unavailable' AND NOT EXISTS "
            "(SELECT 1 FROM fds_evaluations e WHERE e.transaction_id = o.fds::jsonb ->> 'transaction_id')")]
        unwritten = len(unwritten_ids)
    finally:
        await conn.close()
    orders = {(r["status"], r["next_action"]): r["n"] for r in statuses}
    unsettled = sum(n for (status, action), n in orders.items()
                    if status not in TERMINAL and not (status == "pending" and action == "review"))
    return {"orders": sum(orders.values()), "unsettled_orders": unsettled, "pending_payments": pending_payments,
            "evaluations": evaluations, "verdicts_not_written": unwritten,
            "verdicts_not_written_ids": unwritten_ids[:10],
            "by_status": {f"{s}/{a or '-'}": n for (s, a), n in sorted(orders.items(), key=str)}}


def counter(url: str, name: str, **labels: str) -> float:
    body = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(s.value for family in text_string_to_metric_families(body) for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


async def settle(dsn: str, deadline_s: float) -> dict[str, Any]:
    """The database counts once the reconciler has nothing left to do and the FDS has written
    every verdict it gave (or at the deadline). The FDS writes behind (``writer.py``): a verdict
    of the load's last second is on its order before its row is in ``fds_evaluations``."""
    deadline = time.monotonic() + deadline_s
    while True:
        counts = await database_counts(dsn)
        settled = counts["unsettled_orders"] == 0 and counts["pending_payments"] == 0
        if (settled and counts["verdicts_not_written"] == 0) or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(2)


async def soak(args: argparse.Namespace, urls: dict[str, str], pids: dict[str, int], database: str,
               redis_restart: Any) -> dict[str, Any]:
    load = Load(urls["ecommerce"], args.workers)
    faults = Faults(urls, database, redis_restart)
    async with httpx.AsyncClient(timeout=300) as client:  # a model, trained after start (not within its timeout)
        trained = await client.post(f"{urls['ml']}/v1/ml/train", json={"samples": 2000, "deploy": True},
                                    headers=faults.headers)
        err.print(f"model trained and deployed: {trained.status_code}")
    running = asyncio.create_task(load.run())
    await asyncio.sleep(args.warmup)
    rss_warm = {name: rss_mb(pid) for name, pid in pids.items()}
    started = time.monotonic()
    cycle = 0
    while time.monotonic() - started < args.duration:
        name = FAULTS[cycle % len(FAULTS)]
        err.print(f"fault {name} on for {args.window:.0f} s")
        await faults.window(name, args.window)
        await asyncio.sleep(args.window)
        cycle += 1
    load.stop.set()
    await running
    dsn = f"{PG_SERVER}/{database}"
    counts = await settle(dsn, args.settle)
    rss_end = {name: rss_mb(pid) for name, pid in pids.items()}
    outside = [(t, path, status) for t, path, status in load.answers if status >= 500 and faults.covers(t) is None]
    in_windows: dict[str, int] = {}
    for t, _path, status in load.answers:
        if status >= 500 and (fault := faults.covers(t)):
            in_windows[fault] = in_windows.get(fault, 0) + 1
    metrics = {"orders_created": counter(urls["ecommerce"], "ecommerce_orders_total", status="pending"),
               "evaluations": counter(urls["fds"], "fds_evaluations_total"),
               "writes_dropped": counter(urls["fds"], "fds_evaluation_writes_dropped_total"),
               "reconciled": counter(urls["ecommerce"], "ecommerce_orders_reconciled_total")}
    checkouts = [a for a in load.answers if a[1] == "/v1/orders"]
    checks = {
        "every order terminal or in staff review": counts["unsettled_orders"] == 0,
        "no payment pending": counts["pending_payments"] == 0,
        "every verdict written once": counts["verdicts_not_written"] == 0,
        "orders counter == orders in the database": metrics["orders_created"] == counts["orders"],
        "evaluations counter == rows (+ dropped)": metrics["evaluations"] == counts["evaluations"]
        + metrics["writes_dropped"],
        "RSS within 10 % of warm-up": all(rss_end[n] <= rss_warm[n] * (1 + RSS_TOLERANCE) for n in pids),
        "no 5xx outside fault windows": not outside,
    }
    return {"command": "python -m bench.soak " + " ".join(sys.argv[1:]), "duration_s": args.duration,
            "window_s": args.window, "workers": args.workers, "cycles": cycle,
            "checkouts": len(checkouts), "checkouts_201": sum(1 for a in checkouts if a[2] == 201),
            "requests": len(load.answers), "5xx_in_windows": in_windows, "5xx_outside": len(outside),
            "5xx_outside_first": [(round(t - started, 1), p, s) for t, p, s in outside[:5]],
            "database": counts, "metrics": metrics, "rss_warm_mb": rss_warm, "rss_end_mb": rss_end,
            "checks": checks, "ok": all(checks.values())}


def report(result: dict[str, Any]) -> None:
    console = Console()
    table = Table(title=f"soak: {result['duration_s']:.0f} s, {result['cycles']} fault windows of "
                        f"{result['window_s']:.0f} s, {result['workers']} shoppers")
    table.add_column("check")
    table.add_column("result")
    for name, ok in result["checks"].items():
        table.add_row(name, "ok" if ok else "FAILED")
    console.print(table)
    for key in ("checkouts", "checkouts_201", "requests", "5xx_in_windows", "5xx_outside", "5xx_outside_first",
                "database", "metrics", "rss_warm_mb", "rss_end_mb"):
        console.print(f"{key}: {json.dumps(result[key])}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=1200.0, help="seconds of faults cycling after warm-up")
    parser.add_argument("--window", type=float, default=30.0, help="seconds each fault is on (then off as long)")
    parser.add_argument("--warmup", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=60.0, help="seconds the reconciler gets at the end")
    parser.add_argument("--workers", type=int, default=4, help="concurrent shoppers")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep-logs", type=Path,
                        help="when a check fails, copy the services' output and JSON logs there")
    return parser.parse_args(argv)


def keep_logs(workdir: Path, dest: Path) -> None:
    """The services' output, JSON logs and trace stores (what a failed check needs to be
    explained: a transaction id leads to its spans), copied out of the run's temporary directory
    before it goes."""
    for log in [*workdir.glob("out/*.log"), *workdir.rglob("*.jsonl")]:
        target = dest / log.relative_to(workdir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, target)
    err.print(f"logs kept in {dest}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("redis-server") is None:
        err.print("redis-server is not installed (apt-get install -y redis-server)")
        return 1
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp, own_database() as database, \
            own_redis(Path(tmp)) as (redis_url, restart):
        env = {"DATABASE_URL": f"{PG_SERVER}/{database}", "REDIS_URL": redis_url,
               "SHOPFDS_CACHE_PREFIX": "soak:", "SHOPFDS_RECONCILE_AFTER_SECONDS": "10",
               "SHOPFDS_RECONCILE_INTERVAL_SECONDS": "3", "SHOPFDS_TRAIN_ON_START": "false",
               "SHOPFDS_ML_REFRESH_SECONDS": "5",
               "SHOPFDS_LOG_FORMAT": "json"}
        try:
            with services(Path(tmp), env) as (urls, pids):
                result = asyncio.run(soak(args, urls, pids, database, restart))
        except (TimeoutError, RuntimeError):
            for log in sorted((Path(tmp) / "out").glob("*.log")):
                err.print(f"--- {log.name}\n{log.read_text()[-1500:]}")
            raise
        if not result["ok"] and args.keep_logs:
            keep_logs(Path(tmp), args.keep_logs)
    report(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
