"""CTI engine: shipped threat feeds plus an optional external IP reputation provider.

The feeds answer in microseconds. The provider (``SHOPFDS_CTI_PROVIDER_URL``: ``GET
{url}/ip/{ip}`` -> ``{"score": 0-100}``) is called with its own timeout, its answers are cached
(``cti_cache_ttl_seconds``, seed: 3600 s) and it sits behind a circuit breaker, so a provider
outage costs a few failed calls and then nothing. When the provider cannot answer, the engine
still returns the feed result, marked partial (the evaluation is flagged degraded).
"""

from __future__ import annotations

import asyncio
import random
import time

import httpx

from services.common.cache import Cache
from services.common.faults import Faults

from ..context import Context
from . import EngineResult
from .breaker import CircuitBreaker
from .feeds import FEED_SCORES, Feeds


class IpReputation:
    def __init__(self, http: httpx.AsyncClient, cache: Cache, breaker: CircuitBreaker, ttl: float) -> None:
        self.http = http
        self.cache = cache
        self.breaker = breaker
        self.ttl = ttl

    async def score(self, ip: str) -> tuple[float | None, str]:
        """(score, how): how is cached, ok, open (circuit), timeout or error."""
        key = f"fds:cti:ip:{ip}"
        cached = await self.cache.get(key)
        if cached is not None:
            return float(cached), "cached"
        if not self.breaker.allow():
            return None, "open"
        try:
            response = await self.http.get(f"/ip/{ip}")
            response.raise_for_status()
            value = float(response.json()["score"])
            if not 0.0 <= value <= 100.0:
                raise ValueError(f"score {value} outside 0-100")
        except httpx.TimeoutException:
            self.breaker.record_failure()
            return None, "timeout"
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            self.breaker.record_failure()
            return None, "error"
        except asyncio.CancelledError:
            # The engine's budget ran out while waiting: for the breaker that is a failure.
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        await self.cache.set(key, repr(value), self.ttl)
        return value, "ok"

    async def close(self) -> None:
        await self.http.aclose()


class CtiEngine:
    name = "cti"

    def __init__(self, feeds: Feeds, reputation: IpReputation | None, threshold: float,
                 faults: Faults | None = None, slow_share: float = 0.2) -> None:
        self.feeds = feeds
        self.reputation = reputation
        self.threshold = threshold
        self.faults = faults
        self.slow_share = slow_share  # share of lookups the cti-slow fault stalls

    async def evaluate(self, ctx: Context) -> EngineResult:
        slow = self.faults.get("cti-slow") if self.faults is not None else None
        if slow and random.random() < self.slow_share:
            # The cti-slow fault: a *blocking* lookup (a sync client in async code). The event
            # loop stalls, so the engine's timeout cannot cut it: the evaluation breaks its SLA
            # and the fds.engine.cti span shows where the time went. Yielding first lets the other
            # engines of this evaluation finish, so their spans end before the stall.
            for _ in range(3):
                await asyncio.sleep(0)
            time.sleep(slow)
        factors = self.feeds.hits(ctx.txn)
        score = max((FEED_SCORES[f] for f in factors), default=0.0)
        details: dict[str, object] = {"feed_hits": len(factors)}
        partial = None
        # A feed-listed IP needs no second opinion: skip the provider's latency.
        if self.reputation is not None and "cti_bad_ip" not in factors:
            reputation, how = await self.reputation.score(str(ctx.txn.ip_address))
            details["provider"] = how
            if reputation is None:
                partial = f"cti_provider_{how}"
            else:
                score = max(score, reputation)
                if reputation >= self.threshold:
                    factors.append("cti_ip_reputation")
        return EngineResult(score, factors, details, partial_reason=partial)
