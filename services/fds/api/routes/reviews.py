"""The review queue: held transactions without a label, oldest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.common.security import StaffDep

from ... import store
from ...schemas import ReviewList
from ..deps import FlushedSessionDep as SessionDep

router = APIRouter(prefix="/v1/fds", tags=["reviews"])


@router.get("/reviews", response_model=ReviewList)
async def reviews(session: SessionDep, _who: StaffDep,
                  limit: Annotated[int, Query(ge=1, le=500)] = 50) -> ReviewList:
    rows, total = await store.reviews(session, limit)
    return ReviewList(items=[store.to_stored(row) for row in rows], total=total)
