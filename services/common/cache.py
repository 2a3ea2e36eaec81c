"""A small cache and counter store: Redis when ``REDIS_URL`` is set, in-process otherwise.

Both back ends have the same operations and the same semantics, so services run the same code
paths on the embedded default and on Redis:

- ``get`` / ``set`` with a TTL (product cache, CTI lookups);
- ``hit_window(key, window_s)``: record one event now and return how many fell in the last
  ``window_s`` seconds (velocity rules);
- ``observe(key, value)``: add ``value`` to a running count/sum and return the totals *before*
  it (amount history);
- ``remember(key, member)``: add to a set and say whether the member was new (known devices);
- ``recent(key, members, window_s)``: mark members as seen now and count those seen within the
  last ``window_s`` seconds (active users, one count for every process);
- ``claim_peek(key, value, ttl, peek)``: set ``key`` unless it exists, atomically, else return what
  it holds (one evaluation per transaction across the FDS's processes), and read ``peek`` in the
  same round trip; ``set_many`` writes several keys in one.

``batch(ops)`` runs several ``HitWindow`` / ``Observe`` / ``Remember`` operations at once: on
Redis one pipeline, one round trip (the FDS's aggregates step is one call, not seven).

A Redis that fails mid-run is not an outage: ``FallbackCache`` switches to the in-process store,
logs once, and tries Redis again after ``retry_after`` seconds. A Redis that accepts and never
answers is a failure too: every command and connect is bounded (``SHOPFDS_REDIS_TIMEOUT_SECONDS``,
``SHOPFDS_REDIS_CONNECT_TIMEOUT_SECONDS``, 0.5 s each).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("services.cache")


@dataclass(frozen=True)
class HitWindow:
    key: str
    window_s: float


@dataclass(frozen=True)
class Observe:
    key: str
    value: float
    ttl: float


@dataclass(frozen=True)
class Remember:
    key: str
    member: str
    ttl: float


Op = HitWindow | Observe | Remember


class Cache(Protocol):
    backend: str

    async def get(self, key: str) -> str | None: ...
    async def set(self, key: str, value: str, ttl: float) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def hit_window(self, key: str, window_s: float) -> int: ...
    async def observe(self, key: str, value: float, ttl: float) -> tuple[int, float]: ...
    async def remember(self, key: str, member: str, ttl: float) -> bool: ...
    async def claim_peek(self, key: str, value: str, ttl: float, peek: str) -> tuple[str | None, str | None]: ...
    async def set_many(self, items: Sequence[tuple[str, str, float]]) -> None: ...
    async def recent(self, key: str, members: Sequence[str], window_s: float) -> int: ...
    async def batch(self, ops: Sequence[Op]) -> list[Any]: ...
    async def close(self) -> None: ...


class MemoryCache:
    """Bounded LRU with per-key TTL; counters and sets live beside it, bounded the same way."""

    backend = "memory"

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._values: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    def _get(self, key: str) -> Any:
        item = self._values.get(key)
        if item is None:
            return None
        expires, value = item
        if expires < time.monotonic():
            del self._values[key]
            return None
        self._values.move_to_end(key)
        return value

    def _put(self, key: str, value: Any, ttl: float) -> None:
        self._values[key] = (time.monotonic() + ttl, value)
        self._values.move_to_end(key)
        while len(self._values) > self.max_keys:
            self._values.popitem(last=False)

    async def get(self, key: str) -> str | None:
        value = self._get(key)
        return value if isinstance(value, str) else None

    async def set(self, key: str, value: str, ttl: float) -> None:
        self._put(key, value, ttl)

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)

    async def hit_window(self, key: str, window_s: float) -> int:
        now = time.time()
        events = self._get(key)
        if not isinstance(events, deque):
            events = deque()
        events.append(now)
        while events and events[0] <= now - window_s:
            events.popleft()
        self._put(key, events, window_s)
        return len(events)

    async def observe(self, key: str, value: float, ttl: float) -> tuple[int, float]:
        count, total = self._get(key) or (0, 0.0)
        self._put(key, (count + 1, total + value), ttl)
        return count, total

    async def remember(self, key: str, member: str, ttl: float) -> bool:
        members = self._get(key)
        if not isinstance(members, set):
            members = set()
        new = member not in members
        members.add(member)
        self._put(key, members, ttl)
        return new

    async def claim_peek(self, key: str, value: str, ttl: float, peek: str) -> tuple[str | None, str | None]:
        held = self._get(key)
        if not isinstance(held, str):
            self._put(key, value, ttl)
            held = None
        return held, await self.get(peek)

    async def set_many(self, items: Sequence[tuple[str, str, float]]) -> None:
        for key, value, ttl in items:
            self._put(key, value, ttl)

    async def recent(self, key: str, members: Sequence[str], window_s: float) -> int:
        now = time.time()
        seen = self._get(key)
        if not isinstance(seen, dict):
            seen = {}
        seen.update(dict.fromkeys(members, now))
        seen = {m: at for m, at in seen.items() if at > now - window_s}
        self._put(key, seen, max(window_s, 1.0))
        return len(seen)

    async def batch(self, ops: Sequence[Op]) -> list[Any]:
        return [await _apply(self, op) for op in ops]

    def clear(self) -> None:
        self._values.clear()

    async def close(self) -> None:
        self.clear()


class RedisCache:
    backend = "redis"

    def __init__(self, url: str, prefix: str = "shopfds:", timeout: float = 0.5,
                 connect_timeout: float = 0.5) -> None:
        import redis.asyncio as redis

        self.prefix = prefix
        self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=connect_timeout,
                                           decode_responses=True)

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def get(self, key: str) -> str | None:
        value = await self.client.get(self._k(key))
        return value if value is None else str(value)

    async def set(self, key: str, value: str, ttl: float) -> None:
        await self.client.set(self._k(key), value, px=max(1, int(ttl * 1000)))

    async def delete(self, key: str) -> None:
        await self.client.delete(self._k(key))

    async def hit_window(self, key: str, window_s: float) -> int:
        # A sorted set of event times: add now, trim what left the window, count, refresh TTL.
        now = time.time()
        k = self._k(key)
        member = f"{now:.6f}:{time.perf_counter_ns()}"
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(k, {member: now})
        pipe.zremrangebyscore(k, "-inf", now - window_s)
        pipe.zcard(k)
        pipe.expire(k, max(1, int(window_s) + 1))
        results = await pipe.execute()
        return int(results[2])

    async def observe(self, key: str, value: float, ttl: float) -> tuple[int, float]:
        k = self._k(key)
        pipe = self.client.pipeline(transaction=True)
        pipe.hincrby(k, "count", 1)
        pipe.hincrbyfloat(k, "sum", value)
        pipe.expire(k, max(1, int(ttl)))
        count, total, _ = await pipe.execute()
        return int(count) - 1, float(total) - value

    async def remember(self, key: str, member: str, ttl: float) -> bool:
        k = self._k(key)
        pipe = self.client.pipeline(transaction=True)
        pipe.sadd(k, member)
        pipe.expire(k, max(1, int(ttl)))
        added, _ = await pipe.execute()
        return bool(added)

    async def recent(self, key: str, members: Sequence[str], window_s: float) -> int:
        now = time.time()
        k = self._k(key)
        pipe = self.client.pipeline(transaction=True)
        if members:
            pipe.zadd(k, dict.fromkeys(members, now))
        pipe.zremrangebyscore(k, "-inf", now - window_s)
        pipe.zcard(k)
        pipe.expire(k, max(1, int(window_s) + 1))
        replies = await pipe.execute()
        return int(replies[-2])

    async def claim_peek(self, key: str, value: str, ttl: float, peek: str) -> tuple[str | None, str | None]:
        # SET NX GET (Redis >= 7.0): nil when this call set it, else the value already there; the
        # peek in the same round trip (no MULTI: the claim is atomic by itself, the peek a plain read).
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self._k(key), value, nx=True, px=max(1, int(ttl * 1000)), get=True)
        pipe.get(self._k(peek))
        held, seen = await pipe.execute()
        return (None if held is None else str(held)), (None if seen is None else str(seen))

    async def set_many(self, items: Sequence[tuple[str, str, float]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key, value, ttl in items:
            pipe.set(self._k(key), value, px=max(1, int(ttl * 1000)))
        await pipe.execute()

    async def batch(self, ops: Sequence[Op]) -> list[Any]:
        """All ``ops`` in one pipeline (MULTI/EXEC): one round trip, the same answers as one by one."""
        now = time.time()
        pipe = self.client.pipeline(transaction=True)
        sizes = []
        for op in ops:
            k = self._k(op.key)
            if isinstance(op, HitWindow):
                pipe.zadd(k, {f"{now:.6f}:{time.perf_counter_ns()}": now})
                pipe.zremrangebyscore(k, "-inf", now - op.window_s)
                pipe.zcard(k)
                pipe.expire(k, max(1, int(op.window_s) + 1))
                sizes.append(4)
            elif isinstance(op, Observe):
                pipe.hincrby(k, "count", 1)
                pipe.hincrbyfloat(k, "sum", op.value)
                pipe.expire(k, max(1, int(op.ttl)))
                sizes.append(3)
            else:
                pipe.sadd(k, op.member)
                pipe.expire(k, max(1, int(op.ttl)))
                sizes.append(2)
        replies = await pipe.execute()
        out: list[Any] = []
        at = 0
        for op, size in zip(ops, sizes, strict=True):
            part = replies[at:at + size]
            at += size
            if isinstance(op, HitWindow):
                out.append(int(part[2]))
            elif isinstance(op, Observe):
                out.append((int(part[0]) - 1, float(part[1]) - op.value))
            else:
                out.append(bool(part[0]))
        return out

    async def close(self) -> None:
        await self.client.aclose()


class FallbackCache:
    """Redis first; on a Redis error the in-process store answers until ``retry_after`` passes."""

    def __init__(self, primary: RedisCache, retry_after: float = 5.0) -> None:
        self.primary = primary
        self.memory = MemoryCache()
        self.retry_after = retry_after
        self._down_until = 0.0

    @property
    def backend(self) -> str:
        return "memory-fallback" if self._down_until > time.monotonic() else "redis"

    async def _call(self, name: str, *args: Any) -> Any:
        if self._down_until <= time.monotonic():
            try:
                result = await getattr(self.primary, name)(*args)
            except Exception as exc:  # any Redis failure degrades to memory, never to a 500
                if self._down_until == 0.0 or self._down_until < time.monotonic():
                    log.warning("redis unavailable (%s); using the in-process cache for %.0fs",
                                type(exc).__name__, self.retry_after)
                self._down_until = time.monotonic() + self.retry_after
            else:
                if self._down_until:  # Redis is back: what the outage wrote in memory is stale now
                    self._down_until = 0.0
                    self.memory.clear()
                    log.warning("redis available again; the in-process fallback is emptied")
                return result
        return await getattr(self.memory, name)(*args)

    async def get(self, key: str) -> str | None:
        result: str | None = await self._call("get", key)
        return result

    async def set(self, key: str, value: str, ttl: float) -> None:
        await self._call("set", key, value, ttl)

    async def delete(self, key: str) -> None:
        await self._call("delete", key)

    async def hit_window(self, key: str, window_s: float) -> int:
        return int(await self._call("hit_window", key, window_s))

    async def observe(self, key: str, value: float, ttl: float) -> tuple[int, float]:
        result: tuple[int, float] = await self._call("observe", key, value, ttl)
        return result

    async def remember(self, key: str, member: str, ttl: float) -> bool:
        return bool(await self._call("remember", key, member, ttl))

    async def claim_peek(self, key: str, value: str, ttl: float, peek: str) -> tuple[str | None, str | None]:
        result: tuple[str | None, str | None] = await self._call("claim_peek", key, value, ttl, peek)
        return result

    async def set_many(self, items: Sequence[tuple[str, str, float]]) -> None:
        await self._call("set_many", items)

    async def recent(self, key: str, members: Sequence[str], window_s: float) -> int:
        return int(await self._call("recent", key, members, window_s))

    async def batch(self, ops: Sequence[Op]) -> list[Any]:
        result: list[Any] = await self._call("batch", ops)
        return result

    async def close(self) -> None:
        await self.primary.close()
        await self.memory.close()


async def _apply(cache: MemoryCache, op: Op) -> Any:
    if isinstance(op, HitWindow):
        return await cache.hit_window(op.key, op.window_s)
    if isinstance(op, Observe):
        return await cache.observe(op.key, op.value, op.ttl)
    return await cache.remember(op.key, op.member, op.ttl)


def make_cache(redis_url: str | None, prefix: str = "shopfds:", timeout: float = 0.5,
               connect_timeout: float = 0.5) -> Cache | FallbackCache:
    if redis_url:
        return FallbackCache(RedisCache(redis_url, prefix, timeout, connect_timeout))
    return MemoryCache()
