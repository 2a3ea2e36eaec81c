"""POST /v1/fds/evaluate: score a transaction, once per transaction_id whichever process gets it.

``EvaluationService`` (``evaluation.py``) answers; the route puts the answer on the server span.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from opentelemetry import trace

from otel_setup import Attr
from services.common.app import SessionDep
from services.common.http import RETRY_HEADER

from ...evaluation import Answer
from ...schemas import Evaluation, Transaction
from ..deps import EvaluationDep

router = APIRouter(prefix="/v1/fds", tags=["evaluate"])


@router.post("/evaluate", response_model=Evaluation)
async def evaluate(txn: Transaction, evaluations: EvaluationDep, session: SessionDep,
                   retry: Annotated[bool, Header(alias=RETRY_HEADER)] = False) -> Evaluation:
    span = trace.get_current_span()
    span.set_attribute(Attr.FDS_TRANSACTION_ID, txn.transaction_id)
    answer = await evaluations.evaluate(txn, session, asked_before=retry)
    _annotate(span, answer)
    return answer.evaluation


def _annotate(span: trace.Span, answer: Answer) -> None:
    ev = answer.evaluation
    if answer.replayed:
        span.set_attribute(Attr.FDS_REPLAYED, True)
    span.set_attributes({
        Attr.FDS_RISK_SCORE: ev.risk_score,
        Attr.FDS_RISK_LEVEL: ev.risk_level,
        Attr.FDS_DECISION: ev.decision,
        Attr.FDS_DEGRADED: ev.degraded,
        Attr.FDS_DURATION_MS: ev.duration_ms,
    })
