"""The checkout flow at saturation (closed loop), full telemetry against telemetry off.

    python -m bench.checkout_saturation [--backends embedded,postgres] [--environments development,production]
                                        [--concurrency C] [--duration S] [--rounds R] [--shoppers N]
                                        [--profile-seconds S] [--json FILE]

For every backend (the embedded default: SQLite + in-process cache; or PostgreSQL + Redis on
this machine) and every environment (development defaults: 100 % sampling, local trace store;
production defaults: ``ENVIRONMENT=production``, 10 % parent-based sampling), two copies of the
shop run side by side (``shopfds.stack``, payment latency 0): one with telemetry as shipped, one
with ``OTEL_SDK_DISABLED=true``. The load (``bench.load`` with ``concurrency``, its own process)
keeps C checkouts in flight (cart add + ``POST /v1/orders``, which calls the FDS) for S seconds,
R rounds in ABBA order (on, off, off, on, ...) so that drift on a shared machine favours neither.

Per run: completed checkouts per second, error rate, client-side P50/P95 of a checkout, and the
CPU milliseconds each service spent per completed checkout (``/proc/<pid>/stat``). Per backend
and environment: the medians over rounds of each mode, the spread (min-max), and the
throughput ratio on/off, the issue's target being >= 0.90. With ``--profile-seconds`` the
telemetry-on ecommerce of the first configuration is profiled with ``py-spy`` at saturation
(CPU share by package and by function). Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.checkout import OFF, ON, Shop, backend_env, cpu_seconds, rounds_order, summarize, summarize_profile
from services.common.security import issue_token
from services.common.settings import DEFAULT_JWT_SECRET
from shopfds import procs
from shopfds.procs import ROOT
from shopfds.stack import run_stack

RATIO_TARGET = 0.90
CPU_TARGET_MS = 5.0
TPS_TARGET, ERROR_TARGET = 200.0, 0.001
PRODUCTION = {"ENVIRONMENT": "production", "SHOPFDS_JWT_SECRET": "bench-secret-" + "x" * 32,
              "SHOPFDS_ADMIN_PASSWORD": "bench admin password"}
START_TIMEOUT_S = 120.0
err = Console(stderr=True)


def seed_shoppers(shop: Shop, count: int, secret: str) -> None:
    """``count`` shoppers written straight into the copy's database, each with a token, an
    address and a device of its own: registering thousands through argon2 would take minutes,
    and each run needs fresh ones (a shopper's sixth order within an hour is held by the
    velocity rules, which would change the work of a checkout from round to round)."""
    now = datetime.now(UTC)
    rows = [(str(uuid.uuid4()), f"bench-{uuid.uuid4().hex[:12]}@example.com", "B", "bench-no-login", now)
            for _ in range(count)]
    if shop.postgres is None:
        with sqlite3.connect(shop.stack.workdir / "data" / "ecommerce.db") as db:
            db.executemany("INSERT INTO ecommerce_users (id, email, name, password_hash, created_at) "
                           "VALUES (?, ?, ?, ?, ?)", [(*row[:4], row[4].isoformat(" ")) for row in rows])
    else:
        async def insert(dsn: str) -> None:
            import asyncpg

            conn = await asyncpg.connect(dsn)
            try:
                await conn.executemany("INSERT INTO ecommerce_users (id, email, name, password_hash, created_at) "
                                       "VALUES ($1, $2, $3, $4, $5)", rows)
            finally:
                await conn.close()

        asyncio.run(insert(shop.postgres))
    shop.shoppers = [{"Authorization": f"Bearer {issue_token(secret, row[0], 'user', 4 * 3600)}",
                      "X-Device-Id": f"bench-{uuid.uuid4().hex[:12]}",
                      "X-Forwarded-For": f"176.{i // 65025 % 256}.{i // 255 % 255}.{i % 255 + 1}"}
                     for i, row in enumerate(rows)]
    page = httpx.get(f"{shop.stack.urls['ecommerce']}/v1/products", params={"limit": 100}, timeout=30).json()
    # Everyday goods, as bench.checkout: the decisions are those of ordinary traffic.
    shop.products = [p["product_id"] for p in page["items"] if p["category"] != "digital" and p["price"] <= 200_000]


def closed_loop(shop: Shop, concurrency: int, duration: float, workdir: Path, seed: int,
                shoppers: int) -> dict[str, Any]:
    """One closed-loop run of ``bench.load`` against ``shop`` with ``shoppers`` fresh shoppers
    (taken off the copy's list): its figures and the CPU of each service per checkout."""
    workdir.mkdir(parents=True, exist_ok=True)
    config, result = workdir / f"{shop.mode}-{seed}.config.json", workdir / f"{shop.mode}-{seed}.result.json"
    mine, shop.shoppers = shop.shoppers[:shoppers], shop.shoppers[shoppers:]
    if len(mine) < max(concurrency, shoppers):
        raise RuntimeError("out of fresh shoppers: seed more")
    config.write_text(json.dumps({"url": shop.stack.urls["ecommerce"], "concurrency": concurrency,
                                  "duration": duration, "shoppers": mine, "products": shop.products,
                                  "seed": seed}))
    before = {name: cpu_seconds(pid) for name, pid in shop.stack.pids.items()}
    subprocess.run([sys.executable, "-m", "bench.load", str(config), str(result)], cwd=ROOT, check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    cpu = {name: cpu_seconds(pid) - before[name] for name, pid in shop.stack.pids.items()}
    raw = json.loads(result.read_text())
    figures = summarize(raw, [])
    done = max(1, figures["checkout_ms"]["n"])
    return {"tps": figures["achieved_tps"], "error_rate": figures["error_rate"], "outcomes": figures["outcomes"],
            "checkout_ms": figures["checkout_ms"], "order_ms": figures["order_ms"],
            "cpu_ms_per_checkout": {name: round(1000 * s / done, 2) for name, s in cpu.items() if name != "admin"}}


def profile(shop: Shop, concurrency: int, seconds: float, workdir: Path, shoppers: int,
            keep: Path | None = None) -> dict[str, Any] | None:
    """py-spy's CPU samples (GIL held) of the ecommerce process at saturation; the collapsed
    stacks are copied to ``keep`` when given."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        err.print("py-spy not installed: no profile")
        return None
    out = workdir / "profile-ecommerce.txt"
    proc = subprocess.Popen([spy, "record", "--pid", str(shop.stack.pids["ecommerce"]), "--format", "raw",
                             "--rate", "250", "--gil", "--full-filenames", "--duration", str(int(seconds)),
                             "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    closed_loop(shop, concurrency, seconds + 1, workdir, seed=999, shoppers=shoppers)
    proc.wait(timeout=seconds + 30)
    if not out.exists():
        return None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(out, keep / out.name)
    return summarize_profile(out.read_text(), top=20)


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 4)


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians and spread of each mode, and the on/off throughput ratio."""
    out: dict[str, Any] = {}
    for mode in (ON, OFF):
        mine = [r for r in runs if r["mode"] == mode]
        services = mine[0]["cpu_ms_per_checkout"].keys()
        out[mode] = {"tps": median_of(mine, "tps"), "tps_spread": [min(r["tps"] for r in mine),
                                                                   max(r["tps"] for r in mine)],
                     "error_rate": median_of(mine, "error_rate"),
                     "checkout_p50_ms": statistics.median(r["checkout_ms"]["p50"] for r in mine),
                     "checkout_p95_ms": statistics.median(r["checkout_ms"]["p95"] for r in mine),
                     "cpu_ms_per_checkout": {s: round(statistics.median(r["cpu_ms_per_checkout"][s] for r in mine), 2)
                                             for s in services}}
    out["ratio"] = round(out[ON]["tps"] / out[OFF]["tps"], 3) if out[OFF]["tps"] else None
    return out


def _patient_wait_http(url: str, timeout: float = START_TIMEOUT_S, proc: Any = None) -> None:
    # On a loaded shared host the services' imports alone can outlast the stack's 20 s.
    _wait_http(url, timeout=max(timeout, START_TIMEOUT_S), proc=proc)


_wait_http, procs.wait_http = procs.wait_http, _patient_wait_http


def configuration(args: argparse.Namespace, backend: str, environment: str, workdir: Path,
                  profile_it: bool) -> dict[str, Any]:
    base = {"SHOPFDS_PAYMENT_LATENCY_MS": "0", **(PRODUCTION if environment == "production" else {})}
    with ExitStack() as stack:
        shops = {}
        for mode, extra in ((ON, {}), (OFF, {"OTEL_SDK_DISABLED": "true"})):
            env, dsn = stack.enter_context(backend_env(backend, mode))
            shops[mode] = Shop(mode, stack.enter_context(
                run_stack(workdir / mode, env={**base, **extra, **env})), dsn)
        secret = base.get("SHOPFDS_JWT_SECRET", DEFAULT_JWT_SECRET)
        for shop in shops.values():
            err.print(f"{backend}/{environment}/{shop.mode}: seeding shoppers, warming up")
            seed_shoppers(shop, args.shoppers * (args.rounds + 2), secret)
            closed_loop(shop, args.concurrency, 2.0, workdir / "load", seed=0, shoppers=args.shoppers)  # warm-up
        runs = []
        for i, mode in enumerate(rounds_order(args.rounds)):
            figures = closed_loop(shops[mode], args.concurrency, args.duration, workdir / "load", seed=i + 1,
                                  shoppers=args.shoppers)
            runs.append({"mode": mode, **figures})
            err.print(f"  {mode} round {i // 2 + 1}: {figures['tps']}/s, errors {figures['error_rate']:.2%}, "
                      f"CPU ms/checkout {figures['cpu_ms_per_checkout']}")
        profiled = None
        if profile_it and args.profile_seconds > 0:
            err.print(f"profiling ecommerce ({ON}) at saturation for {args.profile_seconds:g}s (py-spy)")
            profiled = profile(shops[ON], args.concurrency, args.profile_seconds, workdir / "profile",
                               args.shoppers, args.profile_dir)
    return {"backend": backend, "environment": environment, "runs": runs, **aggregate(runs), "profile": profiled}


def tables(result: dict[str, Any]) -> list[Table]:
    table = Table(title=f"Checkout at saturation: closed loop, {result['concurrency']} in flight, "
                        f"medians of {result['rounds']} ABBA rounds (spread min-max)")
    for column in ("backend", "environment", "mode", "checkouts/s", "spread", "errors", "P95 ms",
                   "CPU ms/checkout ecommerce", "fds", "ml", "on/off"):
        table.add_column(column, justify="left" if column in ("backend", "environment", "mode") else "right")
    for c in result["configurations"]:
        for mode in (ON, OFF):
            m = c[mode]
            cpu = m["cpu_ms_per_checkout"]
            table.add_row(c["backend"], c["environment"], mode, f"{m['tps']:.1f}",
                          f"{m['tps_spread'][0]:.0f}-{m['tps_spread'][1]:.0f}", f"{m['error_rate']:.2%}",
                          f"{m['checkout_p95_ms']:.1f}", f"{cpu.get('ecommerce', 0):.2f}",
                          f"{cpu.get('fds', 0):.2f}", f"{cpu.get('ml', 0):.2f}",
                          f"{c['ratio']:.2f}" if mode == ON and c["ratio"] is not None else "")
    out = [table]
    for c in result["configurations"]:
        if not c.get("profile"):
            continue
        prof = c["profile"]
        t = Table(title=f"ecommerce profile at saturation ({c['backend']}, {c['environment']}, {ON}; "
                        f"{prof['samples']} samples; telemetry {prof['telemetry_pct']}%)")
        t.add_column("package")
        t.add_column("%", justify="right")
        t.add_column("function (self)")
        t.add_column("%", justify="right")
        packages, functions = list(prof["packages_pct"].items())[:12], list(prof["functions_self_pct"].items())
        for i in range(max(len(packages), len(functions))):
            pk, pv = packages[i] if i < len(packages) else ("", "")
            fk, fv = functions[i] if i < len(functions) else ("", "")
            t.add_row(pk, str(pv), fk, str(fv))
        out.append(t)
    return out


def names(text: str, allowed: tuple[str, ...]) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values or any(v not in allowed for v in values):
        raise argparse.ArgumentTypeError(f"a comma-separated list of {', '.join(allowed)}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.checkout_saturation",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", type=lambda t: names(t, ("embedded", "postgres")),
                        default=["embedded", "postgres"])
    parser.add_argument("--environments", type=lambda t: names(t, ("development", "production")),
                        default=["development", "production"])
    parser.add_argument("--concurrency", type=int, default=24, help="checkouts in flight")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of load per run")
    parser.add_argument("--rounds", type=int, default=2, help="ABBA rounds: 2 is on, off, off, on")
    parser.add_argument("--shoppers", type=int, default=600,
                        help="fresh shoppers per run (each run's checkouts spread over them)")
    parser.add_argument("--profile-seconds", type=float, default=0.0,
                        help="profile the first configuration's ecommerce (0: no profile)")
    parser.add_argument("--profile-dir", type=Path, help="keep py-spy's collapsed stacks there")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.rounds < 1 or args.shoppers < args.concurrency or args.concurrency < 1:
        parser.error("duration, rounds and concurrency must be positive, shoppers >= concurrency")
    configurations = []
    with tempfile.TemporaryDirectory(prefix="shopfds-bench-saturation-") as tmp:
        for backend in args.backends:
            for environment in args.environments:
                workdir = Path(tmp) / f"{backend}-{environment}"
                configurations.append(configuration(args, backend, environment, workdir,
                                                    profile_it=not configurations))
    result = {"concurrency": args.concurrency, "duration_s": args.duration, "rounds": args.rounds,
              "configurations": configurations,
              "targets": {"ratio": RATIO_TARGET, "ecommerce_cpu_ms": CPU_TARGET_MS, "postgres_tps": TPS_TARGET,
                          "error_rate": ERROR_TARGET},
              "machine": {"python": platform.python_version(), "platform": platform.platform(),
                          "cpus": os.cpu_count()},
              "command": " ".join(["python -m bench.checkout_saturation",
                                   *(argv if argv is not None else sys.argv[1:])])}
    console = Console(width=max(Console().width, 160))
    for table in tables(result):
        console.print(table)
    console.print(f"targets: on/off >= {RATIO_TARGET:.2f} in every configuration; ecommerce CPU per checkout "
                  f"with telemetry <= {CPU_TARGET_MS:g} ms; >= {TPS_TARGET:g} checkouts/s on PostgreSQL + Redis "
                  f"with errors < {ERROR_TARGET:.1%}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
