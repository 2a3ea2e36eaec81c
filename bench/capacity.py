"""The capacity plan of docs/scaling.md, computed from the figures ``make bench`` leaves.

    python -m bench.capacity [RESULTS_DIR] [--tps 1000 10000]

Inputs, each a named figure of ``bench/results/checkout_postgres.json`` (``bench.checkout
--backend postgres``, the deployed backend): ``runs[].cpu_ms_per_checkout`` of the telemetry-on
runs at ``sustained_tps`` (CPU ms per checkout and service), and ``pipeline.spans_exported_per_s``
over the telemetry-on load time (spans per checkout). Series come from the cardinality cap
(``TelemetrySettings.metric_cardinality_limit``) over the catalog's metrics. The few figures no
bench here can measure (the collector's and the stores' throughput per core) are ASSUMPTIONS below,
printed as such.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otel_setup import catalog
from otel_setup.settings import TelemetrySettings

SERVICES = ("ecommerce", "fds", "ml", "admin")
UTILISATION = 0.6          # planned CPU use of one pod: headroom for the HPA (target 70 %) to react
MIN_REPLICAS = 2           # a PodDisruptionBudget of maxUnavailable 1 leaves one pod serving
SCRAPE_INTERVAL_S = 15     # deploy/kubernetes/base/prometheus.yml
DECISION_WAIT_S = 10       # collector/otelcol-config.yaml tail_sampling.decision_wait
TRACES_PER_SAMPLING_REPLICA = 500  # collector/sampling.yaml expected_new_traces_per_sec
# ASSUMPTIONS (no collector or VictoriaMetrics cluster runs here; replace them with measured figures:
# otelcol_receiver_accepted_spans_total and vm_rows_inserted_total against container CPU).
GATEWAY_SPANS_PER_CORE = 20_000
SAMPLING_SPANS_PER_CORE = 10_000
BYTES_PER_SPAN_IN_MEMORY = 1024
VM_BYTES_PER_SAMPLE_ON_DISK = 1.0
PROMETHEUS_BYTES_PER_HEAD_SERIES = 4096
VMSTORAGE_BYTES_PER_ACTIVE_SERIES = 1024
VMINSERT_SAMPLES_PER_CORE = 150_000


@dataclass(frozen=True)
class Inputs:
    cpu_ms: dict[str, float]          # CPU ms per checkout, by service
    spans_per_checkout: dict[str, float]
    sustained_tps: float
    cardinality_limit: int


def inputs(results: Path) -> Inputs:
    data: dict[str, Any] = json.loads((results / "checkout_postgres.json").read_text())
    rate = data["sustained_tps"]
    on = [r for r in data["runs"] if r["mode"] == "telemetry"]
    at_rate = [r for r in on if r["offered_tps"] == rate] or on
    cpu = {s: statistics.median(r["cpu_ms_per_checkout"][s] for r in at_rate) for s in SERVICES}
    loaded_s = sum(r["wall_end"] - r["wall_start"] for r in on)
    checkouts = sum(r["achieved_tps"] * (r["wall_end"] - r["wall_start"]) for r in on)
    spans = {s: data["pipeline"]["spans_exported_per_s"][s] * loaded_s / checkouts for s in SERVICES}
    return Inputs(cpu, spans, rate, int(TelemetrySettings.model_fields["metric_cardinality_limit"].default))


def series_cap(service: str, limit: int) -> int:
    """Prometheus series one process can expose at most: every metric stream capped at ``limit``
    attribute sets; a histogram set is len(buckets) + 1 (+Inf) buckets, _sum and _count."""
    total = 0
    for spec in catalog.specs_for(f"shopfds-{service}"):
        per_set = len(spec.buckets or ()) + 3 if spec.kind is catalog.Kind.HISTOGRAM else 1
        total += (limit if spec.labels else 1) * per_set
    return total


def plan(tps: float, given: Inputs) -> dict[str, Any]:
    replicas = {s: max(MIN_REPLICAS, math.ceil(tps * given.cpu_ms[s] / 1000 / UTILISATION)) for s in SERVICES}
    spans_s = tps * sum(given.spans_per_checkout.values())
    gateway = max(MIN_REPLICAS, math.ceil(spans_s / GATEWAY_SPANS_PER_CORE / UTILISATION))
    # One replica may be down (PDB): the others take its share of the traces.
    sampling = max(MIN_REPLICAS, math.ceil(max(tps / TRACES_PER_SAMPLING_REPLICA,
                                               spans_s / SAMPLING_SPANS_PER_CORE / UTILISATION)) + 1)
    spans_per_trace = sum(given.spans_per_checkout.values())
    held_mib = (tps / (sampling - 1)) * 2 * DECISION_WAIT_S * spans_per_trace * BYTES_PER_SPAN_IN_MEMORY / 2**20
    series = sum(replicas[s] * series_cap(s, given.cardinality_limit) for s in SERVICES)
    samples_s = series / SCRAPE_INTERVAL_S
    return {
        "tps": tps, "replicas": replicas, "cores": {s: tps * given.cpu_ms[s] / 1000 for s in SERVICES},
        "spans_s": spans_s, "gateway": gateway, "sampling": sampling, "sampling_held_mib": held_mib,
        "series": series, "samples_s": samples_s,
        "prometheus_head_gib": series * PROMETHEUS_BYTES_PER_HEAD_SERIES / 2**30,
        "vm_disk_gib_per_day": samples_s * 86400 * VM_BYTES_PER_SAMPLE_ON_DISK / 2**30,
        "vmstorage_ram_gib": series * VMSTORAGE_BYTES_PER_ACTIVE_SERIES / 2**30,
        "vminsert": max(MIN_REPLICAS, math.ceil(samples_s / VMINSERT_SAMPLES_PER_CORE / UTILISATION)),
    }


def render(given: Inputs, plans: list[dict[str, Any]]) -> str:
    lines = ["Inputs (bench/results/checkout_postgres.json, telemetry on, at sustained_tps "
             f"{given.sustained_tps:g}/s):"]
    for s in SERVICES:
        lines.append(f"  {s:<9} cpu_ms_per_checkout {given.cpu_ms[s]:6.1f}   spans per checkout "
                     f"{given.spans_per_checkout[s]:5.1f}   series cap per pod "
                     f"{series_cap(s, given.cardinality_limit):6d}")
    lines.append(f"  metric_cardinality_limit {given.cardinality_limit}; planned utilisation {UTILISATION:.0%}")
    lines.append("ASSUMPTIONS (not measured here: no collector or VictoriaMetrics cluster runs on this machine):")
    lines.append(f"  gateway {GATEWAY_SPANS_PER_CORE:,} spans/s per core, sampling tier {SAMPLING_SPANS_PER_CORE:,}, "
                 f"{BYTES_PER_SPAN_IN_MEMORY} B per held span; Prometheus head {PROMETHEUS_BYTES_PER_HEAD_SERIES} B "
                 f"per series; vmstorage {VMSTORAGE_BYTES_PER_ACTIVE_SERIES} B RAM per active series, "
                 f"{VM_BYTES_PER_SAMPLE_ON_DISK:g} B per stored sample; vminsert {VMINSERT_SAMPLES_PER_CORE:,} "
                 "samples/s per core")
    head = "| | " + " | ".join(f"{p['tps']:g} tps" for p in plans) + " |"
    lines += ["", head, "|---|" + "---|" * len(plans)]

    def row(name: str, cell: Any) -> None:
        lines.append(f"| {name} | " + " | ".join(cell(p) for p in plans) + " |")

    for s in SERVICES:
        row(f"{s} replicas (cores used)", lambda p, s=s: f"{p['replicas'][s]} ({p['cores'][s]:.1f})")
    row("spans/s into the gateway", lambda p: f"{p['spans_s']:,.0f}")
    row("otel-gateway replicas", lambda p: str(p["gateway"]))
    row("otel-sampling replicas (held per replica)", lambda p: f"{p['sampling']} ({p['sampling_held_mib']:.0f} MiB)")
    row("series (cap)", lambda p: f"{p['series']:,}")
    row("samples/s", lambda p: f"{p['samples_s']:,.0f}")
    row("Prometheus head memory", lambda p: f"{p['prometheus_head_gib']:.1f} GiB")
    row("vmstorage RAM, all nodes", lambda p: f"{p['vmstorage_ram_gib']:.1f} GiB")
    row("VictoriaMetrics disk per day", lambda p: f"{p['vm_disk_gib_per_day']:.1f} GiB")
    row("vminsert replicas", lambda p: str(p["vminsert"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="bench/results", type=Path)
    parser.add_argument("--tps", nargs="+", type=float, default=[1000.0, 10000.0])
    args = parser.parse_args(argv)
    given = inputs(args.results)
    print(render(given, [plan(t, given) for t in args.tps]))


if __name__ == "__main__":
    main()
