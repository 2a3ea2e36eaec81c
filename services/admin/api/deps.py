"""Dependency aliases for admin handlers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from services.common.app import from_state

from ..settings import Settings
from ..upstream import Upstream


async def _instruments(request: Request) -> Any:
    return request.app.state.telemetry.instruments


UpstreamDep = Annotated[Upstream, Depends(from_state("upstream"))]
SettingsDep = Annotated[Settings, Depends(from_state("settings"))]
InstrumentsDep = Annotated[Any, Depends(_instruments)]
