"""Read-through cache of products and listings on ``app.state.cache`` (Redis or in-process).

Every operation is counted in ``ecommerce_cache_operations_total{operation, result}`` and the
hit ratio gauge follows each lookup. A cache failure is a miss (result ``error``): the
database answers and the request never fails because of the cache. A product's entry is
deleted when its stock changes; listings may show stock up to ``product_cache_ttl`` old.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from services.common.cache import Cache

from .metrics import ShopMetrics

log = logging.getLogger("services.ecommerce.cache")


def product_key(product_id: int) -> str:
    return f"ecommerce:product:{product_id}"


def listing_key(category: str | None, limit: int, offset: int) -> str:
    return f"ecommerce:products:{category or '*'}:{limit}:{offset}"


class ProductCache:
    def __init__(self, cache: Cache, metrics: ShopMetrics, ttl: float) -> None:
        self.cache = cache
        self.metrics = metrics
        self.ttl = ttl

    async def get(self, key: str) -> Any | None:
        try:
            raw = await self.cache.get(key)
        except Exception as exc:  # the cache is an optimisation: fall through to the database
            log.warning("cache get failed: %s", type(exc).__name__)
            self.metrics.cache("get", "error")
            return None
        self.metrics.cache("get", "miss" if raw is None else "hit")
        return None if raw is None else json.loads(raw)

    async def set(self, key: str, value: Any) -> None:
        try:
            await self.cache.set(key, json.dumps(value), self.ttl)
        except Exception as exc:
            log.warning("cache set failed: %s", type(exc).__name__)
            self.metrics.cache("set", "error")
            return
        self.metrics.cache("set", "ok")

    async def delete(self, key: str) -> None:
        try:
            await self.cache.delete(key)
        except Exception as exc:
            log.warning("cache delete failed: %s", type(exc).__name__)
            self.metrics.cache("delete", "error")
            return
        self.metrics.cache("delete", "ok")
