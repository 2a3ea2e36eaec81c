"""The admin service's one table: a resolution claimed before it is applied upstream.

A row exists from the moment a reviewer's decision is accepted; ``order_status`` is set once
ecommerce has applied it and ``outcome`` + ``completed_at`` once the FDS has the label. A retry
reads the row and does only what is still missing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ResolutionRow(Base):
    __tablename__ = "admin_resolutions"

    transaction_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))
    is_fraud: Mapped[bool] = mapped_column(Boolean)
    reviewer: Mapped[str] = mapped_column(String(64))
    order_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(4), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
