"""``ecommerce_active_users``: distinct users seen with a valid token in the last 15 minutes.

Kept in process memory (a dict of user id -> last seen), so recording a sighting is one dict
write on the request path; a background task drops users who left the window and sets the
gauge every ``active_user_refresh_seconds``. A first sighting updates the gauge at once. With
several workers each reports its own users (sum them in Prometheus).
"""

from __future__ import annotations

import asyncio
import time

from .metrics import ShopMetrics


class ActiveUsers:
    def __init__(self, metrics: ShopMetrics, window_s: float) -> None:
        self.metrics = metrics
        self.window_s = window_s
        self._seen: dict[str, float] = {}

    def seen(self, user_id: str) -> None:
        new = user_id not in self._seen
        self._seen[user_id] = time.monotonic()
        if new:
            self.metrics.active_users(len(self._seen))

    def refresh(self) -> int:
        cutoff = time.monotonic() - self.window_s
        for user_id in [u for u, at in self._seen.items() if at < cutoff]:
            del self._seen[user_id]
        self.metrics.active_users(len(self._seen))
        return len(self._seen)

    async def run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.refresh()
