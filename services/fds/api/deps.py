"""Dependency aliases of the FDS routes: the evaluation service and what it holds, typed, and a
session that sees every evaluation answered.

The app builds one ``EvaluationService`` at start (``app.py``); the other aliases are its parts,
so a route names what it uses and never reads ``app.state`` itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from ..evaluation import EvaluationService
from ..metrics import FdsMetrics
from ..settings import Settings


# ``async`` all: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hand-off
# per request for what is an attribute read.
async def get_evaluation_service(request: Request) -> EvaluationService:
    service: EvaluationService = request.app.state.evaluation
    return service


EvaluationDep = Annotated[EvaluationService, Depends(get_evaluation_service)]


async def _metrics(evaluations: EvaluationDep) -> FdsMetrics:
    return evaluations.metrics


async def _settings(evaluations: EvaluationDep) -> Settings:
    return evaluations.settings


async def _flushed_session(evaluations: EvaluationDep) -> AsyncIterator[AsyncSession]:
    # Evaluations are written behind (writer.py): what was answered is in the table before a read.
    await evaluations.writer.flush()
    async with evaluations.writer.db.sessions() as session:
        yield session


FdsMetricsDep = Annotated[FdsMetrics, Depends(_metrics)]
SettingsDep = Annotated[Settings, Depends(_settings)]
FlushedSessionDep = Annotated[AsyncSession, Depends(_flushed_session)]
