"""``GET /v1/admin/stats``: the FDS stats and the review queue length, fetched together."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from services.common.openapi import error
from services.common.security import AdminDep

from ...schemas import Stats
from ..deps import InstrumentsDep, UpstreamDep

router = APIRouter(prefix="/v1/admin", tags=["stats"])


@router.get("/stats", responses={502: error("the FDS failed; the detail says how")})
async def stats(admin: AdminDep, upstream: UpstreamDep, instruments: InstrumentsDep) -> Stats:
    fds_stats, queue = await asyncio.gather(upstream.stats(), upstream.reviews(1))
    instruments["admin_review_queue_size"].set(queue.total)
    return Stats.model_validate({**fds_stats, "review_queue": queue.total})
