"""Faults an operator switches on at run time to watch the telemetry react (like the feature
flags of the OpenTelemetry demo), on every service under ``/internal/faults``:

    cti-slow[=150ms]      the FDS's CTI lookups take this much longer (SLA violations, slow exemplars)
    ml-down               the FDS's ML engine has no model (rules-only, degraded decisions)
    db-slow[=50ms]        every database session waits this long first (API latency)
    payment-errors[=5%]   the payment gateway fails this share of payments (error rate)

``GET /internal/faults`` lists them; ``PUT /internal/faults/{name}`` ``{"value": ...}`` switches one
on; ``DELETE`` switches it off. Both need a ``service`` or ``admin`` token, and the routes exist
only when ``SHOPFDS_FAULT_INJECTION`` is true (the default outside production).

A switch reaches every process of the service: it is published in the service's cache (Redis when
several workers share a port) and each process follows it every ``FOLLOW_SECONDS``; the request
path reads only the process's own copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from .cache import Cache
from .openapi import error
from .security import StaffDep
from .tasks import stop

log = logging.getLogger("services.faults")
KEY = "faults:active"
TTL = 86_400.0
FOLLOW_SECONDS = 0.25

DEFAULTS: dict[str, float] = {"cti-slow": 0.150, "ml-down": 1.0, "db-slow": 0.050, "payment-errors": 0.05}
_VALUE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|%)?\s*$")


def parse_value(name: str, raw: str | float | None) -> float:
    """``150ms`` / ``0.15s`` -> 0.15 (seconds); ``5%`` / ``0.05`` -> 0.05; ``None`` -> the default."""
    if name not in DEFAULTS:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(DEFAULTS)}")
    if raw is None or raw == "":
        return DEFAULTS[name]
    match = _VALUE.match(str(raw))
    if not match:
        raise ValueError(f"fault {name}: bad value {raw!r} (e.g. 150ms, 0.2s, 5%)")
    number, unit = float(match.group(1)), match.group(2)
    value = number / 1000 if unit == "ms" else number / 100 if unit == "%" else number
    if name == "payment-errors" and not 0 <= value <= 1:
        raise ValueError("payment-errors must be between 0% and 100%")
    if name != "payment-errors" and value > 10:
        raise ValueError(f"{name}: {value}s is more than the 10 s any fault may add")
    return value


def parse_spec(spec: str) -> tuple[str, float]:
    """``payment-errors=5%`` -> (``payment-errors``, 0.05)."""
    name, _, raw = spec.partition("=")
    return name.strip(), parse_value(name.strip(), raw.strip() or None)


class Faults:
    """The switches of this process, and the stamp (ns since the epoch) of the change they hold.

    A published change carries its stamp, and the follower takes only a newer one: a read that was
    in flight while this process changed a switch returns the older state, which must not undo it.
    """

    def __init__(self) -> None:
        self.active: dict[str, float] = {}
        self.stamp = 0

    def get(self, name: str) -> float | None:
        return self.active.get(name)

    def take(self, raw: str) -> None:
        payload = json.loads(raw)
        if isinstance(payload, dict) and int(payload.get("stamp", 0)) > self.stamp:
            self.active = {str(k): float(v) for k, v in dict(payload.get("active", {})).items()}
            self.stamp = int(payload["stamp"])

    async def change(self, cache: Cache, active: dict[str, float]) -> None:
        self.active, self.stamp = active, max(time.time_ns(), self.stamp + 1)
        await cache.set(KEY, json.dumps({"stamp": self.stamp, "active": active}), TTL)

    async def follow(self, cache: Cache) -> None:
        """Take the switches of the service's other processes, until cancelled."""
        while True:
            try:
                raw = await cache.get(KEY)
                if raw is not None:
                    self.take(raw)
            except Exception as exc:  # the cache is down: keep the last known switches
                log.debug("faults not followed: %s", type(exc).__name__)
            await asyncio.sleep(FOLLOW_SECONDS)

    @contextlib.asynccontextmanager
    async def followed(self, cache: Cache) -> Any:
        task = asyncio.create_task(self.follow(cache), name="faults-follow")
        try:
            yield
        finally:
            await stop(task)


class FaultIn(BaseModel):
    value: str | float | None = None


router = APIRouter(prefix="/internal/faults", tags=["ops"])


@router.get("")
async def list_faults(request: Request, _who: StaffDep) -> dict[str, Any]:
    return {"active": request.app.state.faults.active, "known": DEFAULTS}


@router.put("/{name}", responses={404: error("unknown fault")})
async def set_fault(name: str, body: FaultIn, request: Request, _who: StaffDep) -> dict[str, Any]:
    try:
        value = parse_value(name, body.value)
    except ValueError as exc:
        raise HTTPException(404 if name not in DEFAULTS else 422, str(exc)) from exc
    faults = request.app.state.faults
    await faults.change(request.app.state.cache, {**faults.active, name: value})
    return {"active": faults.active}


@router.delete("/{name}", responses={404: error("unknown fault")})
async def clear_fault(name: str, request: Request, _who: StaffDep) -> dict[str, Any]:
    if name not in DEFAULTS:
        raise HTTPException(404, f"unknown fault {name!r}")
    faults = request.app.state.faults
    await faults.change(request.app.state.cache, {k: v for k, v in faults.active.items() if k != name})
    return {"active": faults.active}
