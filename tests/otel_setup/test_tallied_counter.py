"""Counters kept as plain totals and read at collect time (``TalliedCounter``): the same series and
values the SDK's ``Counter`` gives, through the real SDK and reader."""

from __future__ import annotations

import threading

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Sum

from otel_setup.instruments import Instruments
from otel_setup.specs import counter


def _collect(reader: InMemoryMetricReader) -> dict[str, dict[frozenset[tuple[str, object]], float]]:
    data = reader.get_metrics_data()
    out: dict[str, dict[frozenset[tuple[str, object]], float]] = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                assert isinstance(metric.data, Sum) and metric.data.is_monotonic
                out[metric.name] = {frozenset(p.attributes.items()): p.value for p in metric.data.data_points}
    return out


def _instruments(limit: int = 100) -> tuple[Instruments, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    specs = [counter("orders_total", "orders", "status"), counter("ticks_total", "ticks")]
    return Instruments(provider.get_meter("test"), specs, cardinality_limit=limit), reader


def test_totals_per_attribute_set_as_a_monotonic_counter() -> None:
    instruments, reader = _instruments()
    assert _collect(reader) == {"ticks_total": {frozenset(): 0}}  # label-less starts at 0; no series yet for the other
    orders = instruments["orders_total"]
    orders.add(1, {"status": "paid"})
    orders.add(2, {"status": "paid"})
    orders.add(1, {"status": "cancelled"})
    orders.add(-5, {"status": "paid"})  # a counter never goes down: ignored, as the SDK does
    instruments["ticks_total"].add(1)
    assert _collect(reader) == {
        "orders_total": {frozenset({("status", "paid")}): 3, frozenset({("status", "cancelled")}): 1},
        "ticks_total": {frozenset(): 1}}
    orders.add(1, {"status": "paid"})
    assert _collect(reader)["orders_total"][frozenset({("status", "paid")})] == 4  # cumulative


def test_attribute_sets_over_the_limit_are_counted_as_overflow() -> None:
    instruments, reader = _instruments(limit=3)
    for i in range(10):
        instruments["orders_total"].add(1, {"status": f"s{i}"})
    series = _collect(reader)["orders_total"]
    overflow = frozenset({("otel.metric.overflow", True)})
    assert series[overflow] == 7 and sum(series.values()) == 10
    assert len(series) == 4


def test_concurrent_adds_lose_nothing() -> None:
    instruments, reader = _instruments()
    orders = instruments["orders_total"]

    def work() -> None:
        for _ in range(20_000):
            orders.add(1, {"status": "paid"})

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _collect(reader)["orders_total"] == {frozenset({("status", "paid")}): 80_000}
