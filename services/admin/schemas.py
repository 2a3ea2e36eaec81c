"""Request and response bodies. FDS and ecommerce payloads are validated on arrival
(``upstream.py``): a body that breaks the contract is a 502, not a 500 on the way out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

# Transaction ids go into upstream URL paths: no "/", "?" or "#" can get through.
TRANSACTION_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


def _id_text(value: Any) -> Any:
    # Ids are opaque strings here, whether a service sends them as UUID text or integers.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Id = Annotated[str, BeforeValidator(_id_text)]


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"


class StoredEvaluation(BaseModel):
    """The FDS ``StoredEvaluation``: the fields the admin reads are typed, the rest pass through."""

    model_config = ConfigDict(extra="allow")

    transaction_id: Id
    order_id: Id | None = None
    decision: str
    is_fraud: bool | None = None
    created_at: datetime | None = None


class ReviewQueue(BaseModel):
    items: list[StoredEvaluation]
    total: int = Field(ge=0)


class Resolve(BaseModel):
    decision: Literal["approve", "block"]
    is_fraud: bool


class Resolution(BaseModel):
    transaction_id: str
    order_id: str
    order_status: str
    outcome: Literal["tp", "fp", "tn", "fn"]


class Order(BaseModel):
    """The part of the ecommerce ``Order`` that a review changes."""

    model_config = ConfigDict(extra="ignore")

    order_id: Id
    status: str
    next_action: str | None = None
    cancel_reason: str | None = None


class Feedback(BaseModel):
    model_config = ConfigDict(extra="ignore")

    transaction_id: str
    is_fraud: bool
    outcome: Literal["tp", "fp", "tn", "fn"]


class Stats(BaseModel):
    """FDS stats (passed through as they are) plus the review queue length."""

    model_config = ConfigDict(extra="allow")

    evaluations: int = 0
    review_queue: int = 0
