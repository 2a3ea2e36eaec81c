"""Targets of the seed and SPEC, and the checks of a :class:`Figures` against them.

A :class:`Check` is one figure against its target; SLA checks decide the headline and the exit code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from otel_setup.catalog import (
    API_P95_TARGET_SECONDS,
    CACHE_HIT_TARGET,
    ENGINE_BUDGETS_SECONDS,
    FDS_SLA_SECONDS,
    PRECISION_ALERT,
)

if TYPE_CHECKING:
    from .figures import Figures

ENGINE_BUDGETS = ENGINE_BUDGETS_SECONDS
ERROR_SHARE_TARGET = 0.001  # error rate < 0.1 %
ERRORS_PER_S_ALERT = 10.0  # "High Error Rate": rate(ecommerce_errors_total[5m]) > 10
RECALL_TARGET = 0.9  # share of the labeled fraud the FDS flags (step-up counted)
MIN_LABELS = 30  # below this many labels a precision or recall is "too few labels", not PASS/FAIL
TPS_CAPACITY = 1000.0  # a capacity target: shown, not checked (the load decides the TPS)


class Verdict(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    NO_DATA = "n/a"
    TOO_FEW = "too few labels"


@dataclass(frozen=True)
class Check:
    """One figure against a target: ``value <= target`` (or ``>=`` when ``higher_is_better``)."""

    name: str
    value: float | None
    target: float
    unit: str  # "ms", "%", "/s" or "" (ratio): how renderers format value and target
    higher_is_better: bool = False
    sla: bool = False  # SLA checks decide the headline and the exit code
    n: float | None = None  # the labels (or samples) the value rests on, when that matters
    min_n: float = 0.0  # below it the value is too uncertain for a verdict

    @property
    def verdict(self) -> Verdict:
        if self.value is None or math.isnan(self.value):
            return Verdict.NO_DATA
        if self.min_n and (self.n is None or self.n < self.min_n):
            return Verdict.TOO_FEW
        ok = self.value >= self.target if self.higher_is_better else self.value <= self.target
        return Verdict.PASS if ok else Verdict.FAIL


def checks(f: Figures) -> list[Check]:
    out = [
        Check("FDS P95", f.fds_p95, FDS_SLA_SECONDS, "ms", sla=True),
        Check("API P95", f.api_p95, API_P95_TARGET_SECONDS, "ms", sla=True),
        Check("error rate (5xx share)", f.error_share, ERROR_SHARE_TARGET, "%", sla=True),
        Check("ecommerce_errors_total rate", f.errors_per_s, ERRORS_PER_S_ALERT, "/s"),
    ]
    for engine, budget in ENGINE_BUDGETS.items():
        out.append(Check(f"{engine} engine P95", f.engine_p95.get(engine), budget, "ms"))
    out.append(Check("cache hit ratio", f.cache_hit_ratio, CACHE_HIT_TARGET, "", higher_is_better=True))
    out.append(Check("precision", f.precision, PRECISION_ALERT, "", higher_is_better=True, n=f.precision_n,
                     min_n=MIN_LABELS))
    out.append(Check("recall", f.recall, RECALL_TARGET, "", higher_is_better=True, n=f.recall_n, min_n=MIN_LABELS))
    return out


def sla_ok(f: Figures) -> bool:
    """No SLA check failed (a check without data does not fail)."""
    return all(c.verdict is not Verdict.FAIL for c in checks(f) if c.sla)
