"""A trained fraud model as plain JSON, and its scorer.

The ML service trains with scikit-learn (standardisation + logistic regression) and publishes
the fitted parameters as a ``ModelArtifact`` dict; the FDS loads it in-process and scores with
a dot product (microseconds, no pickle, nothing executable crosses the network).

    {"version": 3, "algorithm": "logistic_regression", "features": [...FEATURES],
     "mean": [...], "scale": [...], "coef": [...], "intercept": -4.2,
     "threshold": 0.5, "metrics": {"auc": 0.97, "precision": 0.9, "recall": 0.8},
     "trained_at": "2026-11-26T12:00:00+00:00", "samples": 20000}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .features import FEATURES


class ModelFormatError(ValueError):
    pass


@dataclass(frozen=True)
class ModelArtifact:
    version: int
    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float = 0.5
    algorithm: str = "logistic_regression"
    metrics: dict[str, float] = field(default_factory=dict)
    trained_at: str = ""
    samples: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelArtifact:
        try:
            features = tuple(str(f) for f in data["features"])
            artifact = cls(
                version=int(data["version"]), features=features,
                mean=tuple(float(x) for x in data["mean"]), scale=tuple(float(x) for x in data["scale"]),
                coef=tuple(float(x) for x in data["coef"]), intercept=float(data["intercept"]),
                threshold=float(data.get("threshold", 0.5)), algorithm=str(data.get("algorithm", "")),
                metrics={str(k): float(v) for k, v in dict(data.get("metrics", {})).items()},
                trained_at=str(data.get("trained_at", "")), samples=int(data.get("samples", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(f"not a model artifact: {exc}") from exc
        if features != FEATURES:
            raise ModelFormatError(f"model features {features} differ from this build's {FEATURES}")
        if not len(artifact.mean) == len(artifact.scale) == len(artifact.coef) == len(features):
            raise ModelFormatError("mean, scale and coef must have one value per feature")
        return artifact

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version, "algorithm": self.algorithm, "features": list(self.features),
            "mean": list(self.mean), "scale": list(self.scale), "coef": list(self.coef),
            "intercept": self.intercept, "threshold": self.threshold, "metrics": dict(self.metrics),
            "trained_at": self.trained_at, "samples": self.samples,
        }

    def probability(self, vector: list[float]) -> float:
        """P(fraud) for one feature vector in ``FEATURES`` order."""
        z = self.intercept
        for x, m, s, c in zip(vector, self.mean, self.scale, self.coef, strict=True):
            z += c * (x - m) / (s or 1.0)
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)
