"""What the routes do with models: train and register, deploy, score, and the metrics of each.

``ModelService`` lives on ``app.state.ml``. It keeps the deployed artifact in memory but asks
the database for the deployed *version* on every score, so a deployment made through another
replica is picked up on the next request (and the gauges follow it).

Metrics (``otel_setup.catalog.ML``): ``ml_model_trainings_total{algorithm, result=success|failure}``,
``ml_model_training_duration_seconds`` (successful trainings), ``ml_model_auc`` /
``ml_model_precision`` / ``ml_model_recall`` / ``ml_model_deployed_version`` (the deployed model,
set at start and on every change), ``ml_model_deployments_total`` (flag moves, not no-op
re-deploys), ``ml_predictions_total{result=fraud|legit|no_model}`` (fraud: probability at or
above the model's threshold) and ``ml_prediction_duration_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

import otel_setup

from . import registry
from .features import FEATURES
from .model import ModelArtifact
from .models import ModelRow
from .training import ALGORITHM, model_card, train

RESULTS = ("fraud", "legit", "no_model")
log = logging.getLogger("services.ml.training")


class ModelService:
    def __init__(self, telemetry: otel_setup.Telemetry) -> None:
        instruments = telemetry.instruments
        self._trainings = instruments["ml_model_trainings_total"]
        self._training_seconds = instruments["ml_model_training_duration_seconds"]
        self._gauges = {name: instruments[f"ml_model_{name}"] for name in ("auc", "precision", "recall")}
        self._version_gauge = instruments["ml_model_deployed_version"]
        self._deployments = instruments["ml_model_deployments_total"]
        self._predictions = instruments["ml_predictions_total"]
        self._prediction_seconds = instruments["ml_prediction_duration_seconds"]
        # Training takes a CPU for seconds: one at a time, the others wait their turn.
        self._training_lock = asyncio.Lock()
        # Deployments in this process take turns (SQLite has one writer; see registry.deploy).
        self._deploy_lock = asyncio.Lock()
        self._current: ModelArtifact | None = None
        # Known label values start at 0 so that rate() and dashboards work before the first event.
        for result in ("success", "failure"):
            self._trainings.add(0, {"algorithm": ALGORITHM, "result": result})
        for result in RESULTS:
            self._predictions.add(0, {"result": result})

    async def train(self, session: AsyncSession, samples: int, fraud_rate: float, seed: int,
                    deploy: bool) -> ModelRow:
        async with self._training_lock:
            started = time.perf_counter()
            try:
                artifact = await run_in_threadpool(train, samples, fraud_rate, seed)
            except Exception as exc:
                self._trainings.add(1, {"algorithm": ALGORITHM, "result": "failure"})
                otel_setup.capture_exception_with_context(exc, component="ml.training", samples=samples,
                                                          fraud_rate=fraud_rate, seed=seed)
                raise
            self._training_seconds.record(time.perf_counter() - started)
            self._trainings.add(1, {"algorithm": ALGORITHM, "result": "success"})
        row = await registry.add(session, artifact)
        log.info("%s", model_card(registry.artifact_of(row)))
        otel_setup.add_breadcrumb("model trained", category="ml", data={"version": row.version,
                                                                        "auc": row.auc})
        if deploy:
            deployed = await self.deploy(session, row.version)
            row = deployed or row
        return row

    async def deploy(self, session: AsyncSession, version: int) -> ModelRow | None:
        """None if ``version`` is unknown; raises ``registry.DeployConflict`` on a lost race."""
        async with self._deploy_lock:
            result = await registry.deploy(session, version)
        if result is None:
            return None
        row, moved = result
        if moved:
            self._deployments.add(1)
            otel_setup.add_breadcrumb("model deployed", category="ml", data={"version": version})
        self.publish(registry.artifact_of(row))
        return row

    async def current(self, session: AsyncSession) -> ModelArtifact | None:
        """The deployed artifact, reloaded when the deployed version changed."""
        version = await registry.deployed_version(session)
        if version is None:
            self._current = None
            return None
        if self._current is None or self._current.version != version:
            row = await registry.get(session, version)
            if row is None:  # undeployed between the two reads: the next request sees the new one
                return self._current
            self.publish(registry.artifact_of(row))
        return self._current

    async def score(self, session: AsyncSession, features: dict[str, float]) -> tuple[float, int] | None:
        """(probability, version), or None when no model is deployed."""
        started = time.perf_counter()
        artifact = await self.current(session)
        if artifact is None:
            self._predictions.add(1, {"result": "no_model"})
            return None
        probability = artifact.probability([features[name] for name in FEATURES])
        self._prediction_seconds.record(time.perf_counter() - started)
        self._predictions.add(1, {"result": "fraud" if probability >= artifact.threshold else "legit"})
        return probability, artifact.version

    def publish(self, artifact: ModelArtifact) -> None:
        """Make ``artifact`` the one scored with, and show its holdout metrics on the gauges."""
        self._current = artifact
        for name, gauge in self._gauges.items():
            gauge.set(artifact.metrics.get(name, 0.0))
        self._version_gauge.set(artifact.version)

    async def start(self, session: AsyncSession, train_on_start: bool, samples: int, fraud_rate: float,
                    seed: int) -> None:
        """At first start (empty registry) train and deploy a default model; publish the deployed one."""
        if train_on_start and await registry.count(session) == 0:
            # A conflict means another replica deployed its default model first: use that one.
            with contextlib.suppress(registry.DeployConflict):
                await self.train(session, samples, fraud_rate, seed, deploy=True)
        await self.current(session)
