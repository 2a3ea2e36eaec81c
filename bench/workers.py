"""FDS evaluations/s and checkouts/s with 1 and 2 worker processes per service, telemetry on.

    python -m bench.workers [--duration 15] [--connections 8] [--json bench/results/workers.json]

Each round starts the four services (``shopfds.stack.run_stack(workers=N)``) on a PostgreSQL
database and a Redis key prefix of their own, with every telemetry part on (metrics, exemplars,
the trace store, logs), then drives them closed-loop with wrk on 127.0.0.1:

- ``fds``: ``POST /v1/fds/evaluate``, a new transaction_id per request;
- ``checkout``: one shopper per wrk connection, alternating "add a random product to the cart"
  and ``POST /v1/orders`` (a new Idempotency-Key each); the FDS is called by every checkout.

Throughput counts rows in the database (evaluations, orders) made during the run, not wrk's
answers. On a 2-core machine the load generator competes with the services: the CPU seconds of
wrk and of the services' processes are printed beside each figure, with the host's 1-minute load
average (anything else running shows there).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.checkout import PG_SERVER, REDIS_URL, backend_env, cpu_seconds
from shopfds.stack import Stack, run_stack

EVALUATE_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
local counter = 0
local tag
setup = function(thread)
  counter = counter + 1
  thread:set("index", counter)
end
init = function(args)
  -- each thread has a Lua state of its own (and the same unseeded random sequence): the thread's
  -- index and the clock make its transaction ids unique
  tag = string.format("%d-%d", index or 0, os.time())
end
request = function()
  n = n + 1
  local body = string.format('{"transaction_id":"w-%s-%d","order_id":"o-%d","user_id":"u-%d",' ..
    '"amount":45000,"currency":"KRW","payment_method":"card","card_bin":"411111","card_last4":"1111",' ..
    '"ip_address":"10.1.%d.%d","device_id":"d-%d","email":"kim@example.com","billing_country":"KR",' ..
    '"shipping_country":"KR"}', tag, n, n, n % 500, n % 250, n % 200, n % 50)
  return wrk.format(nil, "/v1/fds/evaluate", nil, body)
end
"""

CHECKOUT_LUA = """
local tokens = {%(tokens)s}
local products = {%(products)s}
local counter = 0
local step = 0
local token
setup = function(thread)
  counter = counter + 1
  thread:set("index", counter)
end
init = function(args)
  token = tokens[((index or 1) - 1) %% #tokens + 1]
  math.randomseed(os.time() + (index or 0))
end
request = function()
  step = step + 1
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}
  if step %% 2 == 1 then
    local body = string.format('{"product_id":%%d,"quantity":1}', products[math.random(#products)])
    return wrk.format("POST", "/v1/cart/items", headers, body)
  end
  headers["Idempotency-Key"] = string.format("%%d-%%d-%%d", index or 0, step, math.random(1, 1e9))
  local body = '{"payment":{"method":"card","card_number":"4111111111111111","expiry":"12/30","cvv":"123"},' ..
    '"billing_country":"KR","shipping_country":"KR"}'
  return wrk.format("POST", "/v1/orders", headers, body)
end
"""


def wrk(url: str, script: str, duration: float, connections: int, workdir: Path) -> dict[str, Any]:
    """Run wrk (one thread per connection: each connection keeps its own Lua state) and return
    its summary line and the CPU it used."""
    path = workdir / f"wrk-{uuid.uuid4().hex[:6]}.lua"
    path.write_text(script)
    proc = subprocess.Popen(["wrk", f"-t{connections}", f"-c{connections}", f"-d{int(duration)}s",
                             "--timeout", "5s", "-s", str(path), url], stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    output = proc.stdout.read() if proc.stdout else ""
    if status != 0:
        raise RuntimeError(f"wrk failed ({status}): {output}")
    requests = next((line for line in output.splitlines() if "requests in" in line), "").strip()
    refused = next((line for line in output.splitlines() if "Non-2xx" in line), ":0").rsplit(":", 1)[1]
    return {"wrk_cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "wrk_summary": requests,
            "non_2xx": int(refused.strip() or 0)}


async def _count(dsn: str, table: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await conn.close()


def _shoppers(url: str, count: int) -> list[str]:
    tokens = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for n in range(count):
            email = f"bench-{uuid.uuid4().hex[:8]}-{n}@example.com"
            client.post("/v1/auth/register", json={"email": email, "password": "correct horse 1", "name": "Kim"})
            login = client.post("/v1/auth/login", json={"email": email, "password": "correct horse 1"})
            tokens.append(login.json()["access_token"])
    return tokens


def measure(stack: Stack, dsn: str, kind: str, duration: float, connections: int, workdir: Path) -> dict[str, Any]:
    if kind == "fds":
        url, script, table = stack.urls["fds"], EVALUATE_LUA, "fds_evaluations"
    else:
        shop = stack.urls["ecommerce"]
        products = [p["product_id"] for p in httpx.get(f"{shop}/v1/products", params={"limit": 50}).json()["items"]]
        tokens = ",".join(f'"{t}"' for t in _shoppers(shop, connections))
        url, script, table = shop, CHECKOUT_LUA % {"tokens": tokens, "products": ",".join(map(str, products))}, \
            "ecommerce_orders"
    before_rows = asyncio.run(_count(dsn, table))
    before_cpu = sum(cpu_seconds(pid) for pid in stack.pids.values())
    started = time.monotonic()
    result = wrk(url, script, duration, connections, workdir)
    elapsed = time.monotonic() - started
    services_cpu = sum(cpu_seconds(pid) for pid in stack.pids.values()) - before_cpu
    time.sleep(1.0)  # the FDS writes behind: let the last batch land
    made = asyncio.run(_count(dsn, table)) - before_rows
    return {"kind": kind, "per_s": round(made / elapsed, 1), "rows": made, "seconds": round(elapsed, 1),
            "services_cpu_s": round(services_cpu, 2), "load_1m": round(os.getloadavg()[0], 1), **result}


def run_round(workers: int, args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    with backend_env("postgres", f"w{workers}") as (env, dsn):
        assert dsn is not None
        shared = {"DATABASE_URL": env["SHOPFDS_DATABASE_URL"], "REDIS_URL": env["SHOPFDS_REDIS_URL"],
                  "SHOPFDS_CACHE_PREFIX": env["SHOPFDS_CACHE_PREFIX"], "SHOPFDS_DEFAULT_SAMPLES": "2000",
                  "SHOPFDS_PAYMENT_FAILURE_RATE": "0"}
        with run_stack(workdir / f"w{workers}", env=shared, workers=workers) as stack:
            # pids of the running processes only (uvicorn_app keeps one per service)
            return [{"workers": workers, **measure(stack, dsn, kind, args.duration, args.connections, workdir)}
                    for kind in ("fds", "checkout")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of wrk per measurement")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (closed loop)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="shopfds-bench-workers-") as tmp:
        rows = [row for workers in (1, 2) for row in run_round(workers, args, Path(tmp))]
    result = {"command": "python -m bench.workers " + " ".join(argv or sys.argv[1:]), "cpus": os.cpu_count(),
              "duration_s": args.duration, "connections": args.connections, "postgres": PG_SERVER,
              "redis": REDIS_URL, "rows": rows}
    for row in rows:
        print(f"{row['workers']} worker(s)  {row['kind']:8} {row['per_s']:8.1f}/s  "
              f"services CPU {row['services_cpu_s']:6.1f} s  wrk CPU {row['wrk_cpu_s']:5.1f} s  "
              f"over {row['seconds']} s  ({row['wrk_summary']}, {row['non_2xx']} non-2xx)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
