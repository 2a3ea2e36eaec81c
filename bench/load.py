"""Checkout load, open loop or closed loop, run in its own process so that it does not share an
event loop with the measuring code:

    python -m bench.load CONFIG.json RESULT.json

CONFIG holds ``url``, ``rate`` (checkouts per second), ``duration`` (seconds), ``shoppers``
(request headers of registered shoppers), ``products`` (product ids) and ``seed``. Checkout
``i`` is due at ``start + i / rate`` whatever happened to the earlier ones; it takes a shopper
that has no checkout in flight (two checkouts of one shopper would race on one cart), adds one
product to the cart and posts the order with a fresh card and an ``Idempotency-Key``.

With ``concurrency`` in CONFIG the loop is closed instead: that many workers, each with its own
shoppers, start their next checkout as soon as the last one ends, for ``duration`` seconds (no
``rate``): what the shop completes is its throughput at saturation.

RESULT gets, per checkout: the client-side milliseconds of ``POST /v1/cart/items``, of
``POST /v1/orders`` and of both, how late it started (waiting for a free shopper or for the
event loop), and the outcome (the order's status, or the HTTP status / error). The wall-clock
start and end go with it, for the Prometheus window.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from services.common.money import demo_card

TIMEOUT_S = 10.0


async def run(config: dict[str, Any]) -> dict[str, Any]:
    rate, duration = float(config.get("rate", 0)), float(config["duration"])
    rng = random.Random(config.get("seed", 0))
    products: list[int] = config["products"]
    free: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    for headers in config["shoppers"]:
        free.put_nowait(headers)
    records: list[dict[str, Any]] = []
    connector = aiohttp.TCPConnector(limit=len(config["shoppers"]), ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(config["url"], connector=connector, timeout=timeout) as session:

        async def checkout(due: float) -> None:
            headers = await free.get()
            began = time.perf_counter()
            record: dict[str, Any] = {"late_ms": (began - due) * 1000}
            try:
                item = {"product_id": rng.choice(products), "quantity": 1}
                async with session.post("/v1/cart/items", json=item, headers=headers) as response:
                    await response.read()
                    cart_status = response.status
                added = time.perf_counter()
                record["cart_ms"] = (added - began) * 1000
                if cart_status >= 300:
                    record["outcome"] = f"cart http {cart_status}"
                    return
                body = {"payment": {"method": "card", "card_number": demo_card(), "expiry": "12/30", "cvv": "123"},
                        "billing_country": "KR", "shipping_country": "KR"}
                order_headers = {**headers, "Idempotency-Key": uuid.uuid4().hex}
                async with session.post("/v1/orders", json=body, headers=order_headers) as response:
                    payload = await response.json(content_type=None) if response.status < 300 else {}
                    status = response.status
                done = time.perf_counter()
                record["order_ms"] = (done - added) * 1000
                record["checkout_ms"] = (done - began) * 1000
                record["outcome"] = payload.get("status", "?") if status < 300 else f"http {status}"
            except (TimeoutError, aiohttp.ClientError) as exc:
                record["outcome"] = type(exc).__name__
            finally:
                records.append(record)
                free.put_nowait(headers)

        if "concurrency" in config:
            return await _closed(checkout, int(config["concurrency"]), duration, records)
        total = max(1, int(rate * duration))
        tasks = []
        wall_start, start = time.time(), time.perf_counter()
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(checkout(due)))
        sent = time.perf_counter()
        await asyncio.gather(*tasks)
        elapsed, wall_end = time.perf_counter() - start, time.time()
    return {"offered_tps": rate, "duration_s": duration, "elapsed_s": elapsed, "send_s": sent - start,
            "wall_start": wall_start, "wall_end": wall_end, "records": records}


async def _closed(checkout: Any, workers: int, duration: float, records: list[dict[str, Any]]) -> dict[str, Any]:
    """``workers`` checkouts in flight at every moment until ``duration`` is over."""
    wall_start, start = time.time(), time.perf_counter()
    stop = start + duration

    async def worker() -> None:
        while time.perf_counter() < stop:
            await checkout(time.perf_counter())

    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed, wall_end = time.perf_counter() - start, time.time()
    return {"offered_tps": None, "concurrency": workers, "duration_s": duration, "elapsed_s": elapsed,
            "send_s": elapsed, "wall_start": wall_start, "wall_end": wall_end, "records": records}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    config = json.loads(Path(argv[0]).read_text())
    Path(argv[1]).write_text(json.dumps(asyncio.run(run(config))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
