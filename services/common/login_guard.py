"""Failed logins limited per account and per client IP (admin and shopper logins).

Each attempt is counted *before* the password is checked (``hit_window`` is atomic on both cache
back ends), so a burst of parallel guesses cannot get more than ``limit`` of them verified in a
minute. A success clears the account's and the IP's windows, so it never counts as a failure.
Past the limit a lock key answers 429 without counting or verifying anything until it expires.
"""

from __future__ import annotations

import math
import time

from .cache import Cache

WINDOW_SECONDS = 60.0


class LoginGuard:
    def __init__(self, cache: Cache, limit: int, username: str, client_ip: str, scope: str = "admin") -> None:
        self.cache = cache
        self.limit = limit
        # Usernames are case-folded so that "Admin" and "admin" share one budget.
        self.windows = (f"{scope}:login:account:{username.casefold()}", f"{scope}:login:ip:{client_ip}")

    async def retry_after(self) -> int:
        """Seconds until this account and IP may try again; 0 when an attempt is allowed now."""
        waits = [await self._locked(key) for key in self.windows]
        if max(waits) > 0:
            return max(waits)
        counts = [await self.cache.hit_window(key, WINDOW_SECONDS) for key in self.windows]
        over = [key for key, count in zip(self.windows, counts, strict=True) if count > self.limit]
        for key in over:
            await self.cache.set(_lock(key), str(time.time() + WINDOW_SECONDS), WINDOW_SECONDS)
        return math.ceil(WINDOW_SECONDS) if over else 0

    async def succeeded(self) -> None:
        for key in self.windows:
            await self.cache.delete(key)

    async def _locked(self, key: str) -> int:
        until = await self.cache.get(_lock(key))
        if until is None:
            return 0
        try:
            left = float(until) - time.time()
        except ValueError:
            return 0
        return max(1, math.ceil(left)) if left > 0 else 0


def _lock(key: str) -> str:
    return key + ":locked"
