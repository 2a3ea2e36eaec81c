"""An observed gauge's source is read at collect time; one that raises is contained and counted."""

from __future__ import annotations

from otel_setup.guard import STATS
from otel_setup.instruments import ObservedGauge
from tests.conftest import samples


def _values(telemetry, family: str) -> dict[str, float]:
    return {s.labels["quantile"]: s.value for s in samples(telemetry, family)}


def test_a_source_is_read_at_every_collect_and_a_failing_one_is_contained(make_telemetry) -> None:
    telemetry, _ = make_telemetry("fds")
    gauge = telemetry.instruments["fds_evaluation_latency_summary"]
    assert isinstance(gauge, ObservedGauge)
    figures = {"0.5": 0.01}
    gauge.source = lambda: [(seconds, {"quantile": q}) for q, seconds in figures.items()]
    assert _values(telemetry, "fds_evaluation_latency_summary") == {"0.5": 0.01}
    figures["0.99"] = 0.2
    assert _values(telemetry, "fds_evaluation_latency_summary") == {"0.5": 0.01, "0.99": 0.2}

    def broken() -> list[tuple[float, dict[str, str]]]:
        raise RuntimeError("window gone")

    gauge.source = broken
    gauge.set(0.5, {"quantile": "set"})  # set values are still reported
    errors = STATS.total("otel_setup_errors_total", component="observed-gauge")
    assert _values(telemetry, "fds_evaluation_latency_summary") == {"set": 0.5}
    assert STATS.total("otel_setup_errors_total", component="observed-gauge") == errors + 1
