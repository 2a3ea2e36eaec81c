"""Request and response bodies of the FDS API (docs/services.md "fds")."""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.common.money import CURRENCIES, MAX_AMOUNT

Currency = Literal["KRW", "USD", "EUR", "JPY", "GBP", "CNY"]
assert set(CURRENCIES) == set(Currency.__args__)  # type: ignore[attr-defined]
PaymentMethod = Literal["card", "bank_transfer", "kakao_pay", "naver_pay"]
RiskLevel = Literal["low", "medium", "high", "blocked"]
Decision = Literal["approve", "additional_auth", "hold", "block"]
EngineStatus = Literal["ok", "timeout", "error", "unavailable"]
Outcome = Literal["tp", "fp", "tn", "fn"]

_ID = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"


def _now() -> datetime:
    return datetime.now(UTC)


class Transaction(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    transaction_id: str = Field(min_length=1, max_length=64, pattern=_ID)
    order_id: str = Field(min_length=1, max_length=64, pattern=_ID)
    user_id: str = Field(min_length=1, max_length=64, pattern=_ID)
    amount: float = Field(gt=0, le=MAX_AMOUNT, allow_inf_nan=False)
    currency: Currency
    payment_method: PaymentMethod
    card_bin: str | None = Field(None, pattern=r"^\d{6,8}$")
    card_last4: str | None = Field(None, pattern=r"^\d{4}$")
    ip_address: IPv4Address | IPv6Address
    device_id: str | None = Field(None, min_length=1, max_length=128, pattern=_ID)
    email: str = Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    billing_country: str = Field(pattern=r"^[A-Za-z]{2}$")
    shipping_country: str = Field(pattern=r"^[A-Za-z]{2}$")
    created_at: datetime = Field(default_factory=_now)

    @field_validator("billing_country", "shipping_country")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # In UTC: the model's time-of-day features were trained on UTC timestamps.
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


class EngineReport(BaseModel):
    score: float
    duration_ms: float
    status: EngineStatus


class Evaluation(BaseModel):
    transaction_id: str
    risk_score: float = Field(ge=0, le=100)
    risk_level: RiskLevel
    decision: Decision
    risk_factors: list[str]
    engines: dict[str, EngineReport]
    degraded: bool
    degraded_reason: str | None = None
    model_version: int | None = None
    duration_ms: float


class StoredEvaluation(Evaluation):
    order_id: str
    user_id: str
    amount: float
    currency: str
    created_at: datetime
    is_fraud: bool | None = None


class Feedback(BaseModel):
    is_fraud: bool


class FeedbackResult(BaseModel):
    transaction_id: str
    is_fraud: bool
    outcome: Outcome


class ReviewList(BaseModel):
    items: list[StoredEvaluation]
    total: int


class Stats(BaseModel):
    evaluations: int
    decisions: dict[str, int]
    risk_levels: dict[str, int]
    tp: int
    fp: int
    tn: int
    fn: int
    precision: float | None
    recall: float | None
    f1: float | None
    sla_violations: int
    degraded: int
