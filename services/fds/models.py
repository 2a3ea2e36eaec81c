"""The FDS's own table: one row per evaluated transaction, labelled later by a reviewer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(UTC)


class EvaluationRow(Base):
    __tablename__ = "fds_evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(String(64), unique=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    amount: Mapped[float] = mapped_column(Float)
    currency: Mapped[str] = mapped_column(String(3))
    score: Mapped[float] = mapped_column(Float)
    level: Mapped[str] = mapped_column(String(16))
    decision: Mapped[str] = mapped_column(String(16), index=True)
    factors: Mapped[list[str]] = mapped_column(JSON)
    engines: Mapped[dict[str, Any]] = mapped_column(JSON)
    degraded: Mapped[bool] = mapped_column(Boolean)
    degraded_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_ms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    is_fraud: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    labeled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)
