"""Request and response models (docs/services.md "ecommerce"); constraints here are the 422s."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from services.common.money import valid_card

# Deliberately simple: the shop only needs a routable-looking address and a unique key.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
Country = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")
PaymentMethod = Literal["card", "bank_transfer", "kakao_pay", "naver_pay"]
DEVICE_ID = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"  # the FDS accepts ids of this shape
MAX_ID = 2**31 - 1  # integer ids are 32-bit in the database
OrderStatus = Literal["pending", "processing", "shipped", "delivered", "cancelled"]


class RegisterIn(BaseModel):
    # The pattern is in the schema, so clients (and schema-driven tests) know the shape.
    email: str = Field(max_length=254, pattern=_EMAIL.pattern)
    password: str = Field(min_length=8, max_length=128)
    name: str = Field(min_length=1, max_length=100)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return value.lower()


class RegisterOut(BaseModel):
    user_id: str
    email: str


class LoginIn(BaseModel):
    email: str = Field(max_length=254)
    password: str = Field(max_length=128)


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    user_id: str


class ProductOut(BaseModel):
    product_id: int
    name: str
    category: str
    price: int
    currency: str = "KRW"
    stock: int


class ProductPage(BaseModel):
    items: list[ProductOut]
    total: int


class CartItemIn(BaseModel):
    product_id: int = Field(ge=1, le=MAX_ID)
    quantity: int = Field(ge=1, le=99)


class CartItemOut(BaseModel):
    item_id: int
    product_id: int
    quantity: int
    unit_price: int


class CartOut(BaseModel):
    items: list[CartItemOut]
    total: int
    currency: str = "KRW"


class PaymentIn(BaseModel):
    method: PaymentMethod
    card_number: str | None = Field(None, min_length=12, max_length=23)
    expiry: str | None = Field(None, pattern=r"^(0[1-9]|1[0-2])/\d{2}$", description="MM/YY")
    cvv: str | None = Field(None, pattern=r"^\d{3,4}$")

    @field_validator("card_number")
    @classmethod
    def _luhn(cls, value: str | None) -> str | None:
        if value is not None and not valid_card(value):
            raise ValueError("not a valid card number")
        return value

    @field_validator("expiry")
    @classmethod
    def _not_expired(cls, value: str | None) -> str | None:
        if value is None:
            return value
        month, year = int(value[:2]), 2000 + int(value[3:])
        now = datetime.now(UTC)
        # A card is valid through the last day of its expiry month.
        if (year, month) < (now.year, now.month):
            raise ValueError("card has expired")
        return value

    @model_validator(mode="after")
    def _card_fields(self) -> PaymentIn:
        if self.method == "card" and None in (self.card_number, self.expiry, self.cvv):
            raise ValueError("card payments need card_number, expiry and cvv")
        return self


class CheckoutIn(BaseModel):
    payment: PaymentIn
    billing_country: str = Country
    shipping_country: str = Country
    device_id: str | None = Field(None, min_length=1, max_length=128, pattern=DEVICE_ID)


class VerifyIn(BaseModel):
    code: str = Field(min_length=1, max_length=12)


class ReviewIn(BaseModel):
    decision: Literal["approve", "block"]


class StatusIn(BaseModel):
    status: Literal["shipped", "delivered", "cancelled"]


class OrderItemOut(BaseModel):
    product_id: int
    name: str
    quantity: int
    unit_price: int


class FdsOut(BaseModel):
    transaction_id: str
    decision: str
    risk_score: float | None
    risk_level: str | None
    risk_factors: list[str]
    degraded: bool


class PaymentOut(BaseModel):
    status: Literal["pending", "succeeded", "failed"]
    method: str
    card_bin: str | None = None
    card_last4: str | None = None


class OrderOut(BaseModel):
    order_id: str
    status: OrderStatus
    next_action: Literal["verify", "review"] | None
    cancel_reason: str | None = None
    total_amount: int
    currency: str
    items: list[OrderItemOut]
    fds: FdsOut | None
    payment: PaymentOut | None
    created_at: datetime
