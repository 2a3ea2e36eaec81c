"""bench.capacity on the committed bench figures: the plan follows its inputs."""

from __future__ import annotations

import json
from pathlib import Path

from bench import capacity
from otel_setup import catalog

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"


def test_inputs_are_the_bench_figures() -> None:
    given = capacity.inputs(RESULTS)
    data = json.loads((RESULTS / "checkout_postgres.json").read_text())
    at_rate = [r for r in data["runs"] if r["mode"] == "telemetry" and r["offered_tps"] == data["sustained_tps"]]
    assert min(r["cpu_ms_per_checkout"]["ecommerce"] for r in at_rate) <= given.cpu_ms["ecommerce"] \
        <= max(r["cpu_ms_per_checkout"]["ecommerce"] for r in at_rate)
    assert given.spans_per_checkout["ecommerce"] > given.spans_per_checkout["admin"]


def test_replicas_cover_the_cpu_at_the_planned_utilisation() -> None:
    given = capacity.inputs(RESULTS)
    small, large = capacity.plan(1000, given), capacity.plan(10000, given)
    for service in capacity.SERVICES:
        cores = 1000 * given.cpu_ms[service] / 1000
        assert small["replicas"][service] * capacity.UTILISATION >= cores
        assert small["replicas"][service] >= capacity.MIN_REPLICAS
        assert large["replicas"][service] >= small["replicas"][service]
    assert large["series"] > small["series"] and large["samples_s"] == large["series"] / capacity.SCRAPE_INTERVAL_S
    # one sampling replica down, the others still hold their share within decision_wait
    per_replica = 10000 / (large["sampling"] - 1)
    assert per_replica <= capacity.TRACES_PER_SAMPLING_REPLICA


def test_the_series_cap_counts_histogram_buckets() -> None:
    limit = 500
    specs = catalog.specs_for("shopfds-ml")
    by_hand = sum((limit if s.labels else 1) * ((len(s.buckets or ()) + 3) if s.kind is catalog.Kind.HISTOGRAM else 1)
                  for s in specs)
    assert capacity.series_cap("ml", limit) == by_hand
    assert capacity.series_cap("ml", 10) < capacity.series_cap("ml", limit)


def test_the_plan_in_docs_scaling_is_what_the_script_prints_for_the_committed_figures() -> None:
    """docs/scaling.md's table is bench.capacity's output on bench/results, not a copy that drifts
    when the bench figures or the catalog change."""
    given = capacity.inputs(RESULTS)
    printed = capacity.render(given, [capacity.plan(t, given) for t in (1000.0, 10000.0)])
    table = [line for line in printed.splitlines() if line.startswith("|")]
    docs = (ROOT / "docs" / "scaling.md").read_text().splitlines()
    start = docs.index(table[0])
    assert docs[start:start + len(table)] == table
    assert "ASSUMPTIONS" in printed


def test_the_production_overlay_floors_are_the_plan_for_1000_tps() -> None:
    import yaml

    given = capacity.inputs(RESULTS)
    plan = capacity.plan(1000, given)
    overlay = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "overlays" / "production" / "kustomization.yaml")
                             .read_text())
    counts = {r["name"]: r["count"] for r in overlay["replicas"]}
    assert {s: counts[s] for s in capacity.SERVICES} == plan["replicas"]
    assert (counts["otel-gateway"], counts["otel-sampling"]) == (plan["gateway"], plan["sampling"])
