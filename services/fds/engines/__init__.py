"""The three FDS engines and their one contract.

An engine has a ``name`` (``rule``, ``ml``, ``cti``) and ``async evaluate(ctx) -> EngineResult``.
The evaluator runs them concurrently, each in its own span and under its own budget; an engine
that cannot score raises (``EngineUnavailable`` when it has nothing to score with, e.g. no
model deployed) and the evaluator applies the degraded policy (see ``services.fds``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..context import Context


@dataclass(frozen=True)
class EngineResult:
    score: float  # 0-100
    factors: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    # Hard blocklist hits: the transaction is blocked whatever the score.
    block_reasons: tuple[str, ...] = ()
    # A part of the engine was missing (e.g. the CTI provider); the result is partial.
    partial_reason: str | None = None
    model_version: int | None = None


class EngineUnavailable(Exception):
    """The engine has nothing to score with (no model deployed)."""


class Engine(Protocol):
    name: str

    async def evaluate(self, ctx: Context) -> EngineResult: ...
