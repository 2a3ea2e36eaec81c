"""Training: scikit-learn standardisation + logistic regression on generated transactions.

    artifact = train(20_000, fraud_rate=0.05, seed=7)      # a ModelArtifact (version 0)
    fitted = fit(20_000, 0.05, 7)                          # + the holdout split and sklearn pipeline

The data set comes from ``generator.training_set``; 25 % is held out (stratified by label). The
decision threshold is the one that maximises F1 on the *training* split, so the holdout metrics
(ROC AUC, precision, recall at that threshold) are an honest estimate. The fitted parameters
become a ``ModelArtifact`` whose pure-Python ``probability()`` reproduces ``predict_proba``.

Training is CPU-bound (about a second for 20,000 samples): routes run it in a worker thread.
``model_card`` is what a training prints (the ML service logs it; ``python -m
services.ml.training [--samples N] [--fraud-rate R] [--seed S]`` prints it): holdout AUC and the
precision/recall at the deployed threshold, with the confusion counts they rest on.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_curve, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from .features import FEATURES
from .generator import training_set
from .model import ModelArtifact

ALGORITHM = "logistic_regression"
HOLDOUT = 0.25


@dataclass(frozen=True)
class Fitted:
    """The artifact, the held-out split and the sklearn pipeline it was taken from."""

    artifact: ModelArtifact
    X_holdout: np.ndarray
    y_holdout: np.ndarray
    pipeline: Pipeline


def train(samples: int, fraud_rate: float, seed: int) -> ModelArtifact:
    """A model trained on ``samples`` generated transactions; the registry gives it its version."""
    return fit(samples, fraud_rate, seed).artifact


def fit(samples: int, fraud_rate: float, seed: int) -> Fitted:
    X, y = training_set(samples, fraud_rate, seed)
    if y.sum() < 4 or y.sum() == len(y):
        raise ValueError("too few fraudulent (or legitimate) samples to train and evaluate")
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=HOLDOUT, stratify=y, random_state=seed)
    pipeline = make_pipeline(
        StandardScaler(),
        # No class weights: the FDS reads the probability as a risk score, so it must stay
        # calibrated to the base rate (balanced weights would inflate it about 1/fraud_rate-fold).
        LogisticRegression(max_iter=2000, random_state=seed),
    )
    pipeline.fit(X_train, y_train)
    threshold = best_f1_threshold(y_train, pipeline.predict_proba(X_train)[:, 1])
    p_test = pipeline.predict_proba(X_test)[:, 1]
    flagged = p_test >= threshold
    metrics = {
        "auc": float(roc_auc_score(y_test, p_test)),
        "precision": float(precision_score(y_test, flagged, zero_division=0)),
        "recall": float(recall_score(y_test, flagged, zero_division=0)),
        "holdout": float(len(y_test)), "holdout_fraud": float(y_test.sum()),
        "tp": float((flagged & (y_test == 1)).sum()), "fp": float((flagged & (y_test == 0)).sum()),
    }
    scaler, model = pipeline.named_steps["standardscaler"], pipeline.named_steps["logisticregression"]
    artifact = ModelArtifact(
        version=0, features=FEATURES, algorithm=ALGORITHM,
        mean=tuple(float(x) for x in scaler.mean_), scale=tuple(float(x) for x in scaler.scale_),
        coef=tuple(float(x) for x in model.coef_[0]), intercept=float(model.intercept_[0]),
        threshold=threshold, metrics=metrics, trained_at=datetime.now(UTC).isoformat(), samples=samples,
    )
    return Fitted(artifact, X_test, y_test, pipeline)


def best_f1_threshold(y: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold with the highest F1 (ties: the higher threshold, fewer alerts)."""
    precision, recall, thresholds = precision_recall_curve(y, scores)
    # The curve has one more point than thresholds (recall 0 at the end): drop it.
    precision, recall = precision[:-1], recall[:-1]
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    best = np.flatnonzero(f1 == f1.max())[-1]
    return float(thresholds[best])


def model_card(artifact: ModelArtifact) -> str:
    """The figures a training stands on, in a few lines."""
    m = artifact.metrics
    lines = [f"model v{artifact.version} ({artifact.algorithm}), {artifact.samples} generated samples, "
             f"holdout {m.get('holdout', 0):.0f} ({m.get('holdout_fraud', 0):.0f} fraudulent)",
             f"  holdout ROC AUC        {m.get('auc', 0.0):.4f}",
             f"  deployed threshold     {artifact.threshold:.4f} (best F1 on the training split)",
             f"  precision at threshold {m.get('precision', 0.0):.4f} "
             f"(TP {m.get('tp', 0):.0f}, FP {m.get('fp', 0):.0f})",
             f"  recall at threshold    {m.get('recall', 0.0):.4f}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the fraud model and print its model card.")
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--fraud-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    print(model_card(train(args.samples, args.fraud_rate, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
