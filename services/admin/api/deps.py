"""Dependency aliases for admin handlers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from ..settings import Settings
from ..upstream import Upstream


def _upstream(request: Request) -> Upstream:
    upstream: Upstream = request.app.state.upstream
    return upstream


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _instruments(request: Request) -> Any:
    return request.app.state.telemetry.instruments


UpstreamDep = Annotated[Upstream, Depends(_upstream)]
SettingsDep = Annotated[Settings, Depends(_settings)]
InstrumentsDep = Annotated[Any, Depends(_instruments)]
