"""Evaluations in the database: save once, read back, label, count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import EvaluationRow, utcnow
from .schemas import EngineReport, Evaluation, StoredEvaluation, Transaction


class LabelConflict(Exception):
    """The transaction already carries the other label."""


def outcome_of(decision: str, is_fraud: bool) -> str:
    flagged = decision != "approve"
    if flagged:
        return "tp" if is_fraud else "fp"
    return "fn" if is_fraud else "tn"


async def find(session: AsyncSession, transaction_id: str) -> EvaluationRow | None:
    result = await session.execute(select(EvaluationRow).where(EvaluationRow.transaction_id == transaction_id))
    return result.scalar_one_or_none()


def row_values(txn: Transaction, ev: Evaluation) -> dict[str, Any]:
    """The evaluation's row as column values (written behind by ``writer.EvaluationWriter``)."""
    return {
        "transaction_id": txn.transaction_id, "order_id": txn.order_id, "user_id": txn.user_id,
        "amount": txn.amount, "currency": txn.currency, "score": ev.risk_score, "level": ev.risk_level,
        "decision": ev.decision, "factors": list(ev.risk_factors),
        "engines": {k: v.model_dump() for k, v in ev.engines.items()}, "degraded": ev.degraded,
        "degraded_reason": ev.degraded_reason, "model_version": ev.model_version,
        "duration_ms": ev.duration_ms, "created_at": utcnow(), "is_fraud": None, "labeled_at": None,
    }


def to_evaluation(row: EvaluationRow) -> Evaluation:
    return Evaluation(
        transaction_id=row.transaction_id, risk_score=row.score, risk_level=row.level,  # type: ignore[arg-type]
        decision=row.decision,  # type: ignore[arg-type]
        risk_factors=list(row.factors), engines={k: EngineReport(**v) for k, v in row.engines.items()},
        degraded=row.degraded, degraded_reason=row.degraded_reason, model_version=row.model_version,
        duration_ms=row.duration_ms,
    )


def to_stored(row: EvaluationRow) -> StoredEvaluation:
    return StoredEvaluation(
        **to_evaluation(row).model_dump(), order_id=row.order_id, user_id=row.user_id, amount=row.amount,
        currency=row.currency, created_at=_aware(row.created_at), is_fraud=row.is_fraud,
    )


def _aware(value: datetime) -> datetime:
    # SQLite returns naive datetimes; everything is stored in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def label(session: AsyncSession, row: EvaluationRow, is_fraud: bool) -> tuple[str, bool]:
    """(outcome, changed): the same label again is a no-op; the other label is a conflict."""
    if row.is_fraud is not None:
        if row.is_fraud != is_fraud:
            raise LabelConflict(row.transaction_id)
        return outcome_of(row.decision, is_fraud), False
    row.is_fraud = is_fraud
    row.labeled_at = utcnow()
    await session.commit()
    return outcome_of(row.decision, is_fraud), True


async def reviews(session: AsyncSession, limit: int) -> tuple[list[EvaluationRow], int]:
    waiting = (EvaluationRow.decision == "hold", EvaluationRow.is_fraud.is_(None))
    rows = await session.execute(
        select(EvaluationRow).where(*waiting).order_by(EvaluationRow.created_at, EvaluationRow.id).limit(limit))
    total = await session.scalar(select(func.count()).select_from(EvaluationRow).where(*waiting))
    return list(rows.scalars()), int(total or 0)


@dataclass(frozen=True)
class Confusion:
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0


async def confusion(session: AsyncSession, since: datetime | None = None) -> Confusion:
    """TP/FP/TN/FN of the labeled evaluations (labeled at or after ``since`` when given)."""
    labeled: list[ColumnElement[bool]] = [EvaluationRow.is_fraud.is_not(None)]
    if since is not None:
        labeled.append(EvaluationRow.labeled_at >= since)
    result = await session.execute(
        select(EvaluationRow.decision, EvaluationRow.is_fraud, func.count())
        .where(*labeled).group_by(EvaluationRow.decision, EvaluationRow.is_fraud))
    counts = dict.fromkeys(("tp", "fp", "tn", "fn"), 0)
    for decision, is_fraud, n in result.all():
        counts[outcome_of(decision, bool(is_fraud))] += int(n)
    return Confusion(**counts)


async def counts_by(session: AsyncSession, column: str) -> dict[str, int]:
    col = getattr(EvaluationRow, column)
    result = await session.execute(select(col, func.count()).group_by(col))
    return {str(key): int(n) for key, n in result.all()}


async def totals(session: AsyncSession, sla_ms: float) -> tuple[int, int, int]:
    """(evaluations, over the SLA, degraded)."""
    result = await session.execute(select(
        func.count(),
        func.coalesce(func.sum(case((EvaluationRow.duration_ms > sla_ms, 1), else_=0)), 0),
        func.coalesce(func.sum(case((EvaluationRow.degraded.is_(True), 1), else_=0)), 0),
    ).select_from(EvaluationRow))
    count, slow, degraded = result.one()
    return int(count), int(slow), int(degraded)
