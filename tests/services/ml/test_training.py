"""Training: a useful model (holdout AUC >= 0.9) whose JSON artifact scores exactly like sklearn."""

from __future__ import annotations

import numpy as np
import pytest

from services.ml.features import FEATURES
from services.ml.model import ModelArtifact
from services.ml.training import Fitted, best_f1_threshold, fit, train


@pytest.fixture(scope="module")
def fitted() -> Fitted:
    return fit(20_000, 0.05, 7)


def test_holdout_metrics_are_good(fitted: Fitted) -> None:
    metrics = fitted.artifact.metrics
    assert metrics["auc"] >= 0.9
    assert 0.5 < metrics["precision"] <= 1.0 and 0.5 < metrics["recall"] <= 1.0
    assert len(fitted.y_holdout) == 5_000 and fitted.y_holdout.sum() == 250  # stratified 25 %


def test_artifact_reproduces_sklearn_on_the_holdout(fitted: Fitted) -> None:
    expected = fitted.pipeline.predict_proba(fitted.X_holdout)[:, 1]
    artifact = ModelArtifact.from_dict(fitted.artifact.to_dict())  # through the JSON shape
    got = np.array([artifact.probability(list(row)) for row in fitted.X_holdout])
    assert np.max(np.abs(got - expected)) < 1e-9
    assert artifact.features == FEATURES and artifact.algorithm == "logistic_regression"
    assert 0.0 < artifact.threshold < 1.0 and artifact.samples == 20_000


def test_training_is_deterministic_per_seed() -> None:
    a, b = train(3_000, 0.05, 2), train(3_000, 0.05, 2)
    assert (a.coef, a.intercept, a.metrics) == (b.coef, b.intercept, b.metrics)


def test_smallest_allowed_set_trains() -> None:
    artifact = train(1_000, 0.005, 1)  # 5 frauds: the API's lower bounds
    assert 0.0 <= artifact.metrics["auc"] <= 1.0


def test_best_f1_threshold_separates_a_clean_split() -> None:
    y = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    assert best_f1_threshold(y, scores) == 0.8
