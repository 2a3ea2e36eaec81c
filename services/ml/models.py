"""The model registry table: every trained model, its holdout metrics and which one is deployed."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, Float, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ModelRow(Base):
    __tablename__ = "ml_models"
    # At most one row has deployed = true, enforced by the database (a partial unique index), so
    # two concurrent deployments cannot both win; ``registry.deploy`` turns the loser into a 409.
    __table_args__ = (
        Index("ml_models_one_deployed", "deployed", unique=True,
              postgresql_where=text("deployed"), sqlite_where=text("deployed")),
    )

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    algorithm: Mapped[str] = mapped_column(String(64))
    artifact: Mapped[str] = mapped_column(Text)  # ModelArtifact.to_dict() as JSON
    auc: Mapped[float] = mapped_column(Float)
    precision: Mapped[float] = mapped_column(Float)
    recall: Mapped[float] = mapped_column(Float)
    samples: Mapped[int] = mapped_column(Integer)
    trained_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deployed: Mapped[bool] = mapped_column(Boolean, default=False)

    @property
    def trained_at_utc(self) -> datetime:
        # SQLite hands back naive datetimes; every stored time is UTC.
        t = self.trained_at
        return t if t.tzinfo else t.replace(tzinfo=UTC)
