"""The model registry: store trained models, list them, find and move the deployed flag.

Versions come from the database (an auto-increment key), so concurrent trainings never share
one. Deploying is one transaction that clears the old flag and sets the new one. Deployments are
serialised: on PostgreSQL by a transaction-scoped advisory lock (across replicas; without it two
racing deployments deadlock on each other's unique-index entry), in-process by the caller's lock
(``lifecycle``). The partial unique index on ``deployed`` stays the last word: a race that still
slips through is retried, and never leaves two deployed models.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from .model import ModelArtifact
from .models import ModelRow
from .schemas import ModelInfo, ModelMetrics

# pg_advisory_xact_lock key of "the deployed flag" (any constant shared by all replicas).
DEPLOY_LOCK_KEY = 0x6D6C5F6465706C6F  # "ml_deplo"


class DeployConflict(Exception):
    """Another deployment committed first; retrying is safe."""


async def add(session: AsyncSession, artifact: ModelArtifact) -> ModelRow:
    """Store ``artifact`` under a new version (written into the artifact too) and commit."""
    metrics = artifact.metrics
    row = ModelRow(algorithm=artifact.algorithm, artifact="{}", auc=metrics["auc"],
                   precision=metrics["precision"], recall=metrics["recall"], samples=artifact.samples,
                   trained_at=_parse_time(artifact.trained_at), deployed=False)
    session.add(row)
    await session.flush()  # assigns the version
    data = artifact.to_dict() | {"version": row.version}
    row.artifact = json.dumps(data)
    await session.commit()
    return row


async def deploy(session: AsyncSession, version: int, attempts: int = 3) -> tuple[ModelRow, bool] | None:
    """Make ``version`` the deployed model: (row, whether the flag moved); None if unknown.

    Deployments take turns (see the module docstring), so the last one wins; should one still
    hit the unique index it is retried on the new state.
    """
    postgres = session.get_bind().dialect.name == "postgresql"
    for _ in range(attempts):
        if postgres:  # held until commit or rollback; read the flags only once it is ours
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": DEPLOY_LOCK_KEY})
        row = await session.get(ModelRow, version, populate_existing=True)
        if row is None or row.deployed:
            # End the transaction to release the lock; a commit keeps ``row`` loaded (a rollback
            # would expire it).
            await session.commit()
            return None if row is None else (row, False)
        try:
            # Two statements, not one: a unique index is checked row by row, so clearing and
            # setting in a single UPDATE could momentarily see two deployed rows.
            await session.execute(update(ModelRow).where(ModelRow.deployed.is_(True)).values(deployed=False))
            await session.execute(update(ModelRow).where(ModelRow.version == version).values(deployed=True))
            await session.commit()
        except IntegrityError:
            await session.rollback()
            continue
        await session.refresh(row)
        return row, True
    raise DeployConflict(str(version))


async def get(session: AsyncSession, version: int) -> ModelRow | None:
    return await session.get(ModelRow, version)


async def deployed(session: AsyncSession) -> ModelRow | None:
    result = await session.execute(select(ModelRow).where(ModelRow.deployed.is_(True)))
    return result.scalar_one_or_none()


async def deployed_version(session: AsyncSession) -> int | None:
    """The deployed version alone: cheap enough to ask on every score and every poll."""
    result = await session.execute(select(ModelRow.version).where(ModelRow.deployed.is_(True)))
    return result.scalar_one_or_none()


async def count(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(ModelRow))).scalar_one())


async def newest(session: AsyncSession, limit: int) -> list[ModelRow]:
    result = await session.execute(select(ModelRow).order_by(ModelRow.version.desc()).limit(limit))
    return list(result.scalars())


def artifact_of(row: ModelRow) -> ModelArtifact:
    return ModelArtifact.from_dict(json.loads(row.artifact))


def info(row: ModelRow) -> ModelInfo:
    return ModelInfo(version=row.version, algorithm=row.algorithm,
                     metrics=ModelMetrics(auc=row.auc, precision=row.precision, recall=row.recall),
                     samples=row.samples, trained_at=row.trained_at_utc, deployed=row.deployed)


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value) if value else datetime.now(UTC)
