"""Ecommerce settings (env prefix ``SHOPFDS_``), on top of the shared ``ServiceSettings``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from services.common.settings import ServiceSettings


class Settings(ServiceSettings):
    fds_timeout: float = Field(0.5, gt=0, le=30, description="Seconds to wait for an FDS evaluation.")
    fds_fail_policy: Literal["hold", "block", "approve"] = Field(
        "hold", description="What an order becomes when the FDS errors or times out.")
    payment_failure_rate: float = Field(0.0, ge=0, le=1, description="Share of simulated payments declined.")
    payment_latency_ms: float = Field(0.0, ge=0, le=10_000, description="Simulated gateway latency.")
    verify_code: str = Field("000000", min_length=4, max_length=12,
                             description="The code additional authentication accepts (a demo OTP).")
    product_cache_ttl: float = Field(60.0, gt=0, description="Seconds a product or listing stays cached.")
    active_user_window_seconds: float = Field(900.0, gt=0, description="Active = seen in this window.")
    active_user_refresh_seconds: float = Field(
        5.0, gt=0, description="How often the gauge is refreshed from the shared set.")
    login_attempts_per_minute: int = Field(
        10, ge=1, description="Failed logins allowed a minute per account and per client address (then 429).")
    reconcile: bool = Field(True, description="Run the reconciler of stuck orders and payments in this process.")
    reconcile_after_seconds: float = Field(
        300.0, ge=0, description="An order still pending this long after its checkout is reconciled.")
    reconcile_interval_seconds: float = Field(60.0, gt=0, description="How often the reconciler runs.")
    seed_catalog: bool = Field(True, description="Insert the demo catalog at start when it is empty.")
