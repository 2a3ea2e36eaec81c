"""``ecommerce_active_users``: distinct users seen with a valid token in the last 15 minutes.

One count for the whole service, whatever the number of processes: each process notes the users
it sees (a set insert on the request path) and, every ``active_user_refresh_seconds``, adds them
to one time-windowed set in the shared cache (a Redis sorted set with several workers) and sets
the gauge to that set's size. Every process then reports the same value: aggregate it across
instances with ``max``, never ``sum``.
"""

from __future__ import annotations

import asyncio
import logging

from services.common.cache import Cache

from .metrics import ShopMetrics

log = logging.getLogger("services.ecommerce.activity")
KEY = "ecommerce:active-users"


class ActiveUsers:
    def __init__(self, metrics: ShopMetrics, cache: Cache, window_s: float) -> None:
        self.metrics = metrics
        self.cache = cache
        self.window_s = window_s
        self._fresh: set[str] = set()
        # On /metrics from the first scrape; until this process's first refresh it reads 0, which
        # the max across instances passes over.
        metrics.active_users(0)

    def seen(self, user_id: str) -> None:
        self._fresh.add(user_id)

    async def refresh(self) -> int:
        fresh, self._fresh = self._fresh, set()
        try:
            count = await self.cache.recent(KEY, sorted(fresh), self.window_s)
        except Exception:
            self._fresh |= fresh  # kept for the next round
            raise
        self.metrics.active_users(count)
        return count

    async def run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.refresh()
            except Exception as exc:  # the cache is down: the gauge keeps its last value
                log.warning("active users not refreshed: %s", type(exc).__name__)
