"""Resolving a held transaction: claim, apply in ecommerce, label in the FDS, complete.

Ecommerce goes first because the customer's order is what the reviewer decides; the label goes
second, and until it lands the transaction stays in the FDS review queue, so an unfinished
resolution stays visible. Every step is safe to repeat: the claim row says what was decided,
ecommerce answers 409 for an order already reviewed (then the order itself tells whether our
decision was applied), and the FDS treats the same label again as a no-op.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException, status
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

import otel_setup

from .models import ResolutionRow
from .schemas import Order, Resolution, Resolve, StoredEvaluation
from .upstream import Upstream, UpstreamError


def _conflict(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, detail)


async def resolve(session: AsyncSession, upstream: Upstream, instruments: Any, transaction_id: str,
                  request: Resolve, reviewer: str) -> Resolution:
    evaluation = await upstream.transaction(transaction_id)
    if evaluation is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown transaction")
    _check_resolvable(evaluation, request)
    row = await _claim(session, evaluation, request, reviewer)
    if row.completed_at is None:
        outcome = await _apply(session, upstream, row)
        if await _complete(session, row.transaction_id, outcome):
            _record(instruments, row, evaluation)
        row.outcome = outcome
    otel_setup.add_breadcrumb("review resolved", category="admin.review",
                              data={"decision": row.decision, "is_fraud": row.is_fraud})
    assert row.order_status is not None and row.outcome is not None
    return Resolution(transaction_id=row.transaction_id, order_id=row.order_id,
                      order_status=row.order_status, outcome=row.outcome)  # type: ignore[arg-type]


def _check_resolvable(evaluation: StoredEvaluation, request: Resolve) -> None:
    if evaluation.decision != "hold":
        raise _conflict(f"transaction was not held for review (FDS decision {evaluation.decision})")
    if evaluation.is_fraud is not None and evaluation.is_fraud != request.is_fraud:
        raise _conflict(f"transaction is already labeled is_fraud={str(evaluation.is_fraud).lower()}")
    if not evaluation.order_id:
        raise UpstreamError("fds", "the stored evaluation has no order_id")


async def _claim(session: AsyncSession, evaluation: StoredEvaluation, request: Resolve,
                 reviewer: str) -> ResolutionRow:
    """The resolution row for this transaction: ours, or a matching earlier one; 409 if it differs."""
    row = await session.get(ResolutionRow, evaluation.transaction_id)
    if row is None:
        session.add(ResolutionRow(
            transaction_id=evaluation.transaction_id, order_id=evaluation.order_id, decision=request.decision,
            is_fraud=request.is_fraud, reviewer=reviewer[:64], created_at=datetime.now(UTC)))
        try:
            await session.commit()
        except IntegrityError:  # a concurrent request claimed it first: compare with theirs
            await session.rollback()
        row = await session.get(ResolutionRow, evaluation.transaction_id, populate_existing=True)
        assert row is not None
    if (row.decision, row.is_fraud) != (request.decision, request.is_fraud):
        raise _conflict(f"already resolved as decision={row.decision}, is_fraud={str(row.is_fraud).lower()}")
    return row


async def _apply(session: AsyncSession, upstream: Upstream, row: ResolutionRow) -> str:
    """Apply the decision to the order (unless an earlier attempt did) and send the label; the outcome."""
    if row.order_status is None:
        order = await _review_order(session, upstream, row)
        row.order_status = order.status
        await session.commit()
    feedback = await upstream.feedback(row.transaction_id, row.is_fraud)
    if feedback is None:
        raise _conflict("the FDS holds a different label for this transaction")
    return feedback.outcome


async def _review_order(session: AsyncSession, upstream: Upstream, row: ResolutionRow) -> Order:
    order = await upstream.review_order(row.order_id, row.decision)
    if order is not None:
        return order
    # 409: the order is no longer held. Either an earlier attempt of ours got through (and its
    # answer was lost), or someone resolved the order another way.
    current = await upstream.order(row.order_id)
    if current.next_action == "review":
        raise UpstreamError("ecommerce", "refused to review an order that is still held")
    if _shows_decision(current, row.decision):
        return current
    # Nothing of this resolution was applied: release the claim so that the reviewer can decide again.
    await session.delete(row)
    await session.commit()
    raise _conflict(f"order is already {current.status}: it was resolved outside this review")


def _shows_decision(order: Order, decision: str) -> bool:
    if decision == "block":
        return order.status == "cancelled"
    # An approved order is paid; a payment that then failed cancels it as payment_failed.
    return order.status != "cancelled" or order.cancel_reason == "payment_failed"


async def _complete(session: AsyncSession, transaction_id: str, outcome: str) -> bool:
    """Mark the row done; False when a concurrent request did it first (so metrics count once)."""
    result = await session.execute(
        update(ResolutionRow)
        .where(ResolutionRow.transaction_id == transaction_id, ResolutionRow.completed_at.is_(None))
        .values(outcome=outcome, completed_at=datetime.now(UTC))
        .execution_options(synchronize_session=False))
    await session.commit()
    return bool(getattr(result, "rowcount", 0) == 1)


def _record(instruments: Any, row: ResolutionRow, evaluation: StoredEvaluation) -> None:
    instruments["admin_reviews_resolved_total"].add(
        1, {"decision": row.decision, "is_fraud": str(row.is_fraud).lower()})
    if evaluation.created_at is not None:
        held_at = evaluation.created_at
        if held_at.tzinfo is None:  # a naive time from the FDS is UTC
            held_at = held_at.replace(tzinfo=UTC)
        age = (datetime.now(UTC) - held_at).total_seconds()
        instruments["admin_review_age_seconds"].record(max(0.0, age))
