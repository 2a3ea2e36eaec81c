"""The ML service's settings (environment prefix ``SHOPFDS_``; shared ones in ``services.common.settings``)."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import ServiceSettings


class Settings(ServiceSettings):
    train_on_start: bool = Field(
        True, description="Train and deploy a default model at start when the registry is empty.")
    default_samples: int = Field(20_000, ge=1_000, le=200_000,
                                 description="Generated transactions for the default model.")
    default_fraud_rate: float = Field(0.05, ge=0.005, le=0.5,
                                      description="Fraud share of the default model's data.")
    default_seed: int = Field(7, ge=0, le=2**32 - 1, description="Generator seed of the default model.")
