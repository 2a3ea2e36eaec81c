"""Sampler choice: ``OTEL_TRACES_SAMPLER`` when set, otherwise by environment.

Development samples every trace; production samples 10 % of root traces and follows the
parent's decision. FDS engine spans that the head sampler drops are still *recorded* (not
exported) so that the span-derived engine metrics count every evaluation, not only the
sampled ones; exemplars come only from sampled spans, so an exemplar never names a trace
that head sampling dropped (whether the collector's tail sampling keeps it: collector/README.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import sampling
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from .catalog import ENGINE_SPAN_PREFIX
from .guard import warn_once
from .settings import TelemetrySettings

PRODUCTION_RATIO = 0.1


def _ratio(arg: str | None, default: float) -> float:
    if arg is None:
        return default
    try:
        value = float(arg)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        warn_once("sampler-arg", "invalid OTEL_TRACES_SAMPLER_ARG %r, using %s", arg, default)
        return default
    return value


def base_sampler(settings: TelemetrySettings) -> sampling.Sampler:
    default_ratio = PRODUCTION_RATIO if settings.is_production else 1.0
    name = (settings.traces_sampler or "").strip().lower()
    if not name:
        if default_ratio >= 1.0:
            return sampling.ParentBased(sampling.ALWAYS_ON)
        return sampling.ParentBasedTraceIdRatio(default_ratio)
    ratio = _ratio(settings.traces_sampler_arg, default_ratio)
    factories = {
        "always_on": lambda: sampling.ALWAYS_ON,
        "always_off": lambda: sampling.ALWAYS_OFF,
        "traceidratio": lambda: sampling.TraceIdRatioBased(ratio),
        "parentbased_always_on": lambda: sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": lambda: sampling.ParentBased(sampling.ALWAYS_OFF),
        "parentbased_traceidratio": lambda: sampling.ParentBasedTraceIdRatio(ratio),
    }
    if name not in factories:
        warn_once("sampler", "unknown OTEL_TRACES_SAMPLER %r, using the environment default", name)
        return base_sampler(settings.model_copy(update={"traces_sampler": None}))
    return factories[name]()


class EngineRecordingSampler(sampling.Sampler):
    """Wraps a sampler; engine spans it drops are recorded for metrics but not exported."""

    def __init__(self, inner: sampling.Sampler) -> None:
        self.inner = inner

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> sampling.SamplingResult:
        result = self.inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )
        if result.decision is sampling.Decision.DROP and name.startswith(ENGINE_SPAN_PREFIX):
            return sampling.SamplingResult(
                sampling.Decision.RECORD_ONLY, attributes, result.trace_state
            )
        return result

    def get_description(self) -> str:
        return f"EngineRecordingSampler{{{self.inner.get_description()}}}"
