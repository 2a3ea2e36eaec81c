"""``POST /v1/ml/score``: the deployed model's fraud probability for one feature vector."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status

from services.common.app import SessionDep
from services.common.openapi import error

from ...lifecycle import ModelService
from ...schemas import ScoreRequest, ScoreResponse

router = APIRouter(prefix="/v1/ml", tags=["scoring"])


@router.post("/score", responses={503: error("No model is deployed")})
async def score(body: ScoreRequest, request: Request, session: SessionDep) -> ScoreResponse:
    service: ModelService = request.app.state.ml
    result = await service.score(session, body.vector_values())
    if result is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            "no model is deployed; train one with POST /v1/ml/train {\"deploy\": true}")
    probability, version = result
    return ScoreResponse(probability=probability, version=version)
