"""Totals for the admin dashboard: decisions, levels, labels and quality, SLA, degraded."""

from __future__ import annotations

from fastapi import APIRouter

from services.common.security import StaffDep

from ... import store
from ...aggregator import DECISION_OF_LEVEL
from ...metrics import quality
from ...schemas import Stats
from ..deps import FlushedSessionDep as SessionDep
from ..deps import SettingsDep

router = APIRouter(prefix="/v1/fds", tags=["stats"])
LEVELS = tuple(DECISION_OF_LEVEL)
DECISIONS = tuple(DECISION_OF_LEVEL.values())


@router.get("/stats", response_model=Stats)
async def stats(session: SessionDep, settings: SettingsDep, _who: StaffDep) -> Stats:
    sla_ms = settings.sla_seconds * 1000
    evaluations, over_sla, degraded = await store.totals(session, sla_ms)
    c = await store.confusion(session)
    precision, recall, f1 = quality(c.tp, c.fp, c.fn)
    return Stats(
        evaluations=evaluations,
        decisions=dict.fromkeys(DECISIONS, 0) | await store.counts_by(session, "decision"),
        risk_levels=dict.fromkeys(LEVELS, 0) | await store.counts_by(session, "level"),
        tp=c.tp, fp=c.fp, tn=c.tn, fn=c.fn, precision=precision, recall=recall, f1=f1,
        sla_violations=over_sla, degraded=degraded,
    )
