"""The review queue and resolving a held transaction (``services.admin.resolve``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from opentelemetry import trace

from otel_setup import Attr
from services.common.app import SessionDep
from services.common.openapi import error
from services.common.security import AdminDep

from ...resolve import resolve
from ...schemas import TRANSACTION_ID_PATTERN, Resolution, Resolve, ReviewQueue
from ..deps import InstrumentsDep, UpstreamDep

router = APIRouter(prefix="/v1/admin/reviews", tags=["reviews"])
UPSTREAM_FAILED = error("the FDS or ecommerce failed; the detail names which")


@router.get("", responses={502: UPSTREAM_FAILED})
async def list_reviews(admin: AdminDep, upstream: UpstreamDep, instruments: InstrumentsDep,
                       limit: Annotated[int, Query(ge=1, le=500)] = 50) -> ReviewQueue:
    queue = await upstream.reviews(limit)
    instruments["admin_review_queue_size"].set(queue.total)
    return queue


@router.post("/{transaction_id}/resolve", responses={
    404: error("unknown transaction"), 409: error("not held, or already resolved another way"),
    502: UPSTREAM_FAILED})
async def resolve_review(transaction_id: Annotated[str, Path(pattern=TRANSACTION_ID_PATTERN)], body: Resolve,
                         admin: AdminDep, session: SessionDep, upstream: UpstreamDep,
                         instruments: InstrumentsDep) -> Resolution:
    # On the server span, so that the trace of a resolution is found by the transaction it resolved.
    trace.get_current_span().set_attribute(Attr.FDS_TRANSACTION_ID, transaction_id)
    return await resolve(session, upstream, instruments, transaction_id, body, admin.subject)
