"""Request and response bodies of the ML API (docs/services.md "ml")."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, create_model

from .features import FEATURES

# Bounds far beyond any real feature value: they keep the dot product finite.
FEATURE_LIMIT = 1e6


class TrainRequest(BaseModel):
    samples: int = Field(20_000, ge=1_000, le=200_000)
    fraud_rate: float = Field(0.05, ge=0.005, le=0.5)
    seed: int = Field(7, ge=0, le=2**32 - 1)
    deploy: bool = False


class ModelMetrics(BaseModel):
    auc: float
    precision: float
    recall: float


class ModelInfo(BaseModel):
    version: int
    algorithm: str
    metrics: ModelMetrics
    samples: int
    trained_at: datetime
    deployed: bool


class ModelList(BaseModel):
    items: list[ModelInfo]
    deployed_version: int | None


# One required, finite, bounded float per feature; any other name is rejected (422).
FeatureValues = create_model(  # type: ignore[call-overload]
    "FeatureValues",
    __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
    **{name: (float, Field(ge=-FEATURE_LIMIT, le=FEATURE_LIMIT)) for name in FEATURES},
)


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    features: FeatureValues  # type: ignore[valid-type]

    def vector_values(self) -> dict[str, float]:
        values: BaseModel = self.features
        return values.model_dump()


class ScoreResponse(BaseModel):
    probability: float
    version: int
