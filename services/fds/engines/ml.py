"""ML engine: the model deployed by the ML service, scored in-process.

``ModelSource`` fetches ``GET {ml_url}/v1/ml/models/deployed`` at start and then every
``ml_refresh_seconds`` (``If-None-Match`` with the current version, so an unchanged model costs
a 304). A new version replaces the old one atomically; a failed fetch or an invalid artifact
keeps the model in use. With no model yet, the engine is ``unavailable`` and the evaluator
decides on rules and CTI (degraded).
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from services.common.faults import Faults
from services.common.tasks import stop
from services.ml.model import ModelArtifact, ModelFormatError

from ..context import Context
from . import EngineResult, EngineUnavailable

log = logging.getLogger("services.fds.ml")
DEPLOYED_PATH = "/v1/ml/models/deployed"


class ModelSource:
    def __init__(self, http: httpx.AsyncClient, refresh_seconds: float) -> None:
        self.http = http
        self.refresh_seconds = refresh_seconds
        self.model: ModelArtifact | None = None
        self._etag: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> bool:
        """Fetch the deployed model; True when a new one was loaded."""
        headers = {"If-None-Match": self._etag} if self._etag and self.model is not None else {}
        try:
            response = await self.http.get(DEPLOYED_PATH, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("ML service unreachable (%s); keeping model %s", type(exc).__name__, self.version)
            return False
        if response.status_code in (304, 404):  # unchanged / nothing deployed yet
            return False
        try:
            response.raise_for_status()
            model = ModelArtifact.from_dict(response.json())
        except (httpx.HTTPError, ValueError, ModelFormatError) as exc:
            log.warning("deployed model not loaded (%s); keeping model %s", exc, self.version)
            return False
        changed = self.model is None or model.version != self.model.version
        self.model = model
        self._etag = response.headers.get("etag") or str(model.version)
        if changed:
            log.info("ML model version %s loaded", model.version)
        return changed

    @property
    def version(self) -> int | None:
        return self.model.version if self.model is not None else None

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll(), name="fds-ml-model-refresh")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refresh()
            except Exception:  # the poller must outlive any one bad answer
                log.exception("ML model refresh failed")

    async def close(self) -> None:
        if self._task is not None:
            await stop(self._task)
        await self.http.aclose()


class MlEngine:
    name = "ml"

    def __init__(self, source: ModelSource, faults: Faults | None = None) -> None:
        self.source = source
        self.faults = faults

    async def evaluate(self, ctx: Context) -> EngineResult:
        if self.faults is not None and self.faults.get("ml-down"):
            raise EngineUnavailable("ml-down fault: the ML service is unreachable")
        model = self.source.model  # one read: a concurrent reload cannot mix two versions
        if model is None:
            raise EngineUnavailable("no model deployed by the ML service")
        probability = model.probability(ctx.feature_vector())
        factors = ["ml_high_risk"] if probability >= model.threshold else []
        return EngineResult(round(probability * 100, 2), factors, {"probability": probability},
                            model_version=model.version)
