"""``/v1/ml/train`` and ``/v1/ml/models``: train, list, fetch the deployed artifact, deploy."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status

from services.common.app import SessionDep
from services.common.openapi import error
from services.common.security import StaffDep

from ... import registry
from ...lifecycle import ModelService
from ...schemas import ModelInfo, ModelList, TrainRequest

router = APIRouter(prefix="/v1/ml", tags=["models"])
MAX_VERSION = 2**31 - 1  # the column is a 32-bit integer: larger ids cannot exist
RACE_LOST = error("another deployment won the race; deploy again")


def _service(request: Request) -> ModelService:
    service: ModelService = request.app.state.ml
    return service


@router.post("/train", status_code=status.HTTP_201_CREATED, responses={409: RACE_LOST})
async def train_model(body: TrainRequest, request: Request, session: SessionDep, _who: StaffDep) -> ModelInfo:
    try:
        row = await _service(request).train(session, body.samples, body.fraud_rate, body.seed, body.deploy)
    except registry.DeployConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, "another deployment won the race; deploy again") from exc
    return registry.info(row)


@router.get("/models")
async def list_models(session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> ModelList:
    rows = await registry.newest(session, limit)
    return ModelList(items=[registry.info(r) for r in rows], deployed_version=await registry.deployed_version(session))


@router.get("/models/deployed", responses={
    200: {"description": "The deployed ModelArtifact (services/ml/model.py); ETag is its version"},
    304: {"description": "The caller's If-None-Match already names the deployed version"},
    404: error("No model is deployed"),
})
async def deployed_artifact(session: SessionDep,
                            if_none_match: Annotated[str | None, Header()] = None) -> Response:
    version = await registry.deployed_version(session)
    if version is not None and _matches(if_none_match, version):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=_etag(version))
    row = await registry.deployed(session)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no model is deployed")
    # The stored JSON is the artifact dict already: served as is, without a parse and re-encode.
    return Response(row.artifact, media_type="application/json", headers=_etag(row.version))


@router.post("/models/{version}/deploy", responses={404: error("no such model version"), 409: RACE_LOST})
async def deploy_model(version: int, request: Request, session: SessionDep, _who: StaffDep) -> ModelInfo:
    try:
        row = await _service(request).deploy(session, version) if 1 <= version <= MAX_VERSION else None
    except registry.DeployConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, "another deployment won the race; deploy again") from exc
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no model version {version}")
    return registry.info(row)


def _etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"', "Cache-Control": "no-cache"}


def _matches(if_none_match: str | None, version: int) -> bool:
    """RFC 9110 weak comparison; a bare version (``3``) is accepted as well as ``"3"``."""
    if not if_none_match:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip().removeprefix("W/").strip('"')
        if tag in ("*", str(version)):
            return True
    return False
