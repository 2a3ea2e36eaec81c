"""Sampler choice: ``OTEL_TRACES_SAMPLER`` when set, otherwise by environment.

Development samples every trace; production samples 10 % of root traces and follows the
parent's decision. Spans that feed span-derived metrics (the FDS engine spans) that the head
sampler drops are still *recorded* (not exported) so that those metrics count every
evaluation, not only the sampled ones; exemplars come only from sampled spans, so an exemplar never names a trace
that head sampling dropped (whether the collector's tail sampling keeps it: collector/README.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import sampling
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from .settings import TelemetrySettings

PRODUCTION_RATIO = 0.1


def base_sampler(settings: TelemetrySettings) -> sampling.Sampler:
    """The head sampler the settings name (validated there) or the environment's default."""
    default_ratio = PRODUCTION_RATIO if settings.is_production else 1.0
    ratio = default_ratio if settings.traces_sampler_arg is None else settings.traces_sampler_arg
    factories = {
        "always_on": lambda: sampling.ALWAYS_ON,
        "always_off": lambda: sampling.ALWAYS_OFF,
        "traceidratio": lambda: sampling.TraceIdRatioBased(ratio),
        "parentbased_always_on": lambda: sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": lambda: sampling.ParentBased(sampling.ALWAYS_OFF),
        "parentbased_traceidratio": lambda: sampling.ParentBasedTraceIdRatio(ratio),
    }
    if settings.traces_sampler is not None:
        return factories[settings.traces_sampler]()
    if default_ratio >= 1.0:
        return sampling.ParentBased(sampling.ALWAYS_ON)
    return sampling.ParentBasedTraceIdRatio(default_ratio)


class RecordingSampler(sampling.Sampler):
    """Wraps a sampler; spans it drops that start with one of ``attributes`` (the span-derived
    metrics' spans, ``specs.SpanMetric``) are recorded for those metrics but not exported."""

    def __init__(self, inner: sampling.Sampler, attributes: frozenset[str] = frozenset()) -> None:
        self.inner = inner
        self.attributes = attributes

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
        if (result.decision is sampling.Decision.DROP and attributes
                and not self.attributes.isdisjoint(attributes)):
            return sampling.SamplingResult(
                sampling.Decision.RECORD_ONLY, attributes, result.trace_state
            )
        return result

    def get_description(self) -> str:
        return f"RecordingSampler{{{self.inner.get_description()}}}"
