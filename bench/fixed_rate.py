"""FDS evaluations offered at a fixed rate (open loop), in a process of its own:

    python -m bench.fixed_rate CONFIG.json RESULT.json

CONFIG holds ``url`` (the FDS), ``rate`` (evaluations per second), ``duration`` (seconds),
``bodies`` (transactions without ``transaction_id``) and ``prefix`` (of the unique ids).
Request ``i`` is due at ``start + i / rate`` whatever happened to the earlier ones, as wrk2
schedules (wrk2 is not packaged here): its latency is counted from when it was *due*, so a
stall of the service or of this generator shows in the percentiles instead of silently
delaying the next requests (coordinated omission). The service time (from the moment it was
actually sent) goes beside it.

RESULT: ``latency_ms`` and ``service_ms`` percentiles, achieved rate, errors by kind, the
wall-clock start and end.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bench.services import percentiles

TIMEOUT_S = 5.0
CONNECTIONS = 64


async def run(config: dict[str, Any]) -> dict[str, Any]:
    rate, duration = float(config["rate"]), float(config["duration"])
    bodies: list[dict[str, Any]] = config["bodies"]
    prefix: str = config["prefix"]
    latencies: list[float] = []
    service: list[float] = []
    errors: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=CONNECTIONS, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(config["url"], connector=connector, timeout=timeout) as session:

        async def one(i: int, due: float) -> None:
            body = {"transaction_id": f"{prefix}-{i}", **bodies[i % len(bodies)]}
            sent = time.perf_counter()
            try:
                async with session.post("/v1/fds/evaluate", json=body) as response:
                    await response.read()
                    if response.status != 200:
                        errors[f"http {response.status}"] += 1
                        return
            except (TimeoutError, aiohttp.ClientError) as exc:
                errors[type(exc).__name__] += 1
                return
            done = time.perf_counter()
            latencies.append((done - due) * 1000)
            service.append((done - sent) * 1000)

        total = max(1, int(rate * duration))
        tasks = []
        wall_start, start = time.time(), time.perf_counter()
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        elapsed, wall_end = time.perf_counter() - start, time.time()
    return {"offered_tps": rate, "duration_s": duration, "requests": total,
            "achieved_tps": round(len(latencies) / elapsed, 1), "errors": dict(errors),
            "latency_ms": percentiles(latencies), "service_ms": percentiles(service),
            "wall_start": wall_start, "wall_end": wall_end}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    config = json.loads(Path(argv[0]).read_text())
    try:
        import uvloop  # the generator's own loop must not be the slow part of what it measures
    except ImportError:
        result = asyncio.run(run(config))
    else:
        result = uvloop.run(run(config))
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
