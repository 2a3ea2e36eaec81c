"""FDS settings (environment prefix ``SHOPFDS_``): engine budgets, weights, thresholds, CTI, ML."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from otel_setup.catalog import ENGINE_BUDGETS_SECONDS, FDS_SLA_SECONDS
from services.common.settings import ServiceSettings

PACKAGE_DIR = Path(__file__).resolve().parent


class Settings(ServiceSettings):
    # Engine budgets (seed troubleshooting: rule > 30 ms, ML > 40 ms, CTI > 50 ms are bottlenecks).
    rule_timeout_seconds: float = Field(ENGINE_BUDGETS_SECONDS["rule"], gt=0, description="Rule engine budget.")
    ml_timeout_seconds: float = Field(ENGINE_BUDGETS_SECONDS["ml"], gt=0, description="ML engine budget.")
    cti_timeout_seconds: float = Field(ENGINE_BUDGETS_SECONDS["cti"], gt=0, description="CTI engine budget.")
    aggregates_timeout_seconds: float = Field(
        0.030, gt=0, description="Budget of the velocity/history step; on timeout engines see no history.")
    sla_seconds: float = Field(FDS_SLA_SECONDS, gt=0, description="Evaluations slower than this are SLA violations.")

    # Aggregation: weighted noisy-OR of the engine scores (see aggregator.py).
    rule_weight: float = Field(1.0, gt=0, le=1)
    ml_weight: float = Field(0.6, gt=0, le=1)
    cti_weight: float = Field(1.0, gt=0, le=1)
    medium_threshold: float = Field(30.0, ge=0, le=100, description="score >= this: medium -> additional_auth")
    high_threshold: float = Field(60.0, ge=0, le=100, description="score >= this: high -> hold")
    blocked_threshold: float = Field(85.0, ge=0, le=100, description="score >= this: blocked -> block")
    rule_fallback_hold_amount_krw: float = Field(
        1_000_000.0, ge=0, description="Rule engine missing: hold at or above this amount, else additional_auth.")

    rules_path: str = Field(str(PACKAGE_DIR / "rules.yaml"), description="Rule book (YAML), validated at start.")
    history_ttl_seconds: float = Field(90 * 86400, gt=0, description="How long amount history and devices are kept.")

    # ML: the deployed model is fetched from the ML service and scored in-process.
    ml_refresh_seconds: float = Field(30.0, gt=0, description="Poll period of GET /v1/ml/models/deployed.")
    ml_fetch_timeout_seconds: float = Field(2.0, gt=0)

    # CTI: shipped feeds plus an optional external IP reputation provider.
    cti_feeds_dir: str = Field(str(PACKAGE_DIR / "feeds"))
    cti_provider_url: str | None = Field(None, description="GET {url}/ip/{ip} -> {score: 0-100}; unset: feeds only.")
    cti_provider_timeout_seconds: float = Field(
        0.03, gt=0, description="Below the CTI budget, so that a slow provider still leaves the feed result.")
    cti_provider_threshold: float = Field(50.0, ge=0, le=100, description="Provider score that is a risk factor.")
    cti_slow_fault_share: float = Field(0.2, ge=0, le=1, description="Share of CTI lookups the cti-slow fault stalls.")
    cti_cache_ttl_seconds: float = Field(3600.0, gt=0, description="Provider answers cached this long (seed: 3600 s).")
    cti_breaker_failures: int = Field(5, ge=1, description="Consecutive provider failures that open the circuit.")
    cti_breaker_reset_seconds: float = Field(30.0, gt=0, description="Open circuit: seconds before a probe.")

    latency_window: int = Field(1000, ge=10, description="Evaluations in the latency quantile window.")
    quality_window_seconds: float = Field(
        3600.0, gt=0, description="Labels of this recent past make the fds_*_windowed quality gauges.")
    quality_refresh_seconds: float = Field(
        5.0, gt=0, description="Period at which each FDS process re-reads the quality gauges from the database.")
    write_interval_seconds: float = Field(0.05, gt=0, le=10, description="Batch write period.")
    write_batch: int = Field(500, ge=1, description="Or as soon as this many are waiting.")
    write_max_pending: int = Field(50_000, ge=1, description="Waiting rows beyond this are refused (logged, counted).")
    write_retry_max_seconds: float = Field(
        5.0, gt=0, le=300, description="Cap of the backoff between failed batch writes (database outage).")

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> Settings:
        if not self.medium_threshold <= self.high_threshold <= self.blocked_threshold:
            raise ValueError("thresholds must satisfy medium <= high <= blocked")
        return self
