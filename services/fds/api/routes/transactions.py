"""A stored evaluation and its fraud label (reviewer feedback)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from services.common.openapi import error
from services.common.security import StaffDep

from ... import store
from ...models import EvaluationRow
from ...schemas import Feedback, FeedbackResult, StoredEvaluation
from ..deps import FdsMetricsDep
from ..deps import FlushedSessionDep as SessionDep

router = APIRouter(prefix="/v1/fds/transactions", tags=["transactions"])
TransactionId = Annotated[str, Path(min_length=1, max_length=64)]
NOT_FOUND = error("no evaluation for this transaction")


async def _row(session: SessionDep, transaction_id: str) -> EvaluationRow:
    row = await store.find(session, transaction_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no evaluation for this transaction")
    return row


@router.get("/{transaction_id}", response_model=StoredEvaluation, responses={404: NOT_FOUND})
async def get_transaction(transaction_id: TransactionId, session: SessionDep, _who: StaffDep) -> StoredEvaluation:
    return store.to_stored(await _row(session, transaction_id))


@router.post("/{transaction_id}/feedback", response_model=FeedbackResult,
             responses={404: NOT_FOUND, 409: error("already labelled the other way")})
async def feedback(transaction_id: TransactionId, body: Feedback, session: SessionDep, metrics: FdsMetricsDep,
                   _who: StaffDep) -> FeedbackResult:
    row = await _row(session, transaction_id)
    try:
        outcome, changed = await store.label(session, row, body.is_fraud)
    except store.LabelConflict:
        raise HTTPException(status.HTTP_409_CONFLICT, "transaction already labelled the other way") from None
    if changed:
        metrics.labelled(outcome)
        await metrics.refresh_quality(session)  # the other processes follow within quality_refresh_seconds
    return FeedbackResult(transaction_id=transaction_id, is_fraud=body.is_fraud, outcome=outcome)  # type: ignore[arg-type]
