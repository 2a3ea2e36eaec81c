"""The two collector tiers (collector/gateway.yaml, collector/sampling.yaml), checked as data.

No otelcol binary runs here. The gateway and the sampling tier (today's collector/otelcol-config.yaml
with the sampling.yaml overlay, with and without the Sentry overlay) pass the same wiring checks as
the single collector; the gateway routes every traces and logs pipeline by trace id to the sampling
tier and does nothing that needs whole traces; the loadbalancing keys are those of the pinned
release's config struct; the resolver's name is the sampling tier's name in compose and Kubernetes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.pipeline import test_collector_config as single

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR = ROOT / "collector"
GATEWAY = single.load(COLLECTOR / "gateway.yaml")
SAMPLING_OVERLAY = single.load(COLLECTOR / "sampling.yaml")
SAMPLING = single.merge(single.load(single.BASE), SAMPLING_OVERLAY)
TIERS = {
    "gateway": GATEWAY,
    "sampling": SAMPLING,
    "sampling-with-sentry": single.merge(SAMPLING, single.load(single.SENTRY)),
}
# mapstructure keys of exporter/loadbalancingexporter/config.go (Config, ResolverSettings,
# DNSResolver, K8sSvcResolver, StaticResolver) that exist at the pinned release.
LOADBALANCING_KEYS = {
    "": {"routing_key", "routing_attributes", "protocol", "resolver", "timeout", "retry_on_failure",
         "sending_queue"},
    "resolver": {"static", "dns", "k8s", "aws_cloud_map"},
    "resolver.dns": {"hostname", "port", "interval", "timeout"},
    "resolver.k8s": {"service", "ports", "timeout", "return_hostnames"},
    "resolver.static": {"hostnames"},
}
# otlpexporter.Config (the OTLP/gRPC exporter every backend gets), minus `endpoint` (resolved).
OTLP_KEYS = {"timeout", "tls", "sending_queue", "retry_on_failure", "compression", "headers", "keepalive",
             "balancer_name", "write_buffer_size", "read_buffer_size", "wait_for_ready", "auth", "authority"}
ROUTING_KEYS = {"traceID", "service", "resource", "metric", "streamID", "attributes"}


@pytest.fixture(params=sorted(TIERS))
def tier(request: pytest.FixtureRequest) -> dict[str, Any]:
    return TIERS[request.param]


def test_each_tier_is_wired_like_the_single_collector(tier: dict[str, Any]) -> None:
    single.test_every_pipeline_reference_is_defined(tier)
    single.test_every_defined_component_is_used(tier)
    single.test_memory_limiter_first_and_batch_last(tier)


def test_the_checks_reject_a_broken_tier() -> None:
    broken = single.merge(GATEWAY, {"service": {"pipelines": {"traces": {"exporters": ["loadbalancer"]}}}})
    with pytest.raises(AssertionError):
        single.test_every_pipeline_reference_is_defined(broken)
    unordered = single.merge(GATEWAY, {"service": {"pipelines": {"logs": {"processors": ["batch", "memory_limiter"]}}}})
    with pytest.raises(AssertionError):
        single.test_memory_limiter_first_and_batch_last(unordered)


def _keys(node: dict[str, Any], path: str = "") -> list[tuple[str, str]]:
    found = []
    for key, value in node.items():
        found.append((path, key))
        if isinstance(value, dict) and path + key in ("resolver", "resolver.dns", "resolver.k8s", "resolver.static"):
            found += _keys(value, f"{path}{key}.".removeprefix("."))
    return [(p.rstrip("."), k) for p, k in found]


def test_loadbalancing_keys_are_those_of_the_pinned_release() -> None:
    exporter = GATEWAY["exporters"]["loadbalancing"]
    for path, key in _keys(exporter):
        assert key in LOADBALANCING_KEYS[path], f"loadbalancing.{path}.{key}".replace("..", ".")
    assert set(exporter["protocol"]) == {"otlp"}
    assert set(exporter["protocol"]["otlp"]) <= OTLP_KEYS
    assert "endpoint" not in exporter["protocol"]["otlp"]  # ignored: the resolver names the backends
    assert exporter["routing_key"] in ROUTING_KEYS
    assert len(exporter["resolver"]) == 1, "exactly one resolver"


def test_the_gateway_routes_traces_and_logs_by_trace_id_and_nothing_else() -> None:
    exporters = GATEWAY["exporters"]
    assert exporters["loadbalancing"]["routing_key"] == "traceID"
    pipes = single.pipelines(GATEWAY)
    assert {name.split("/")[0] for name in pipes} == {"traces", "logs"}
    for name, pipe in pipes.items():
        assert pipe["exporters"] == ["loadbalancing"], f"{name}: data would leave unsampled and unscrubbed"
        types = {single.ctype(p) for p in pipe["processors"]}
        # Whole-trace work belongs after the routing: on the gateway it would see a fraction of a trace.
        assert not types & {"tail_sampling", "groupbytrace", "transform", "redaction"}, f"{name}: {types}"
    assert not GATEWAY.get("connectors"), "span metrics on the gateway would count unsampled spans"


def test_the_resolver_names_the_sampling_tier_on_its_otlp_grpc_port() -> None:
    dns = GATEWAY["exporters"]["loadbalancing"]["resolver"]["dns"]
    grpc = SAMPLING["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert grpc.rsplit(":", 1)[1] == dns["port"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert "cluster" in compose[dns["hostname"]]["profiles"]
    services = [d for path in (ROOT / "deploy" / "kubernetes" / "base").glob("*.yaml")
                for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "Service"]
    headless = [s for s in services if s["metadata"]["name"] == dns["hostname"]]
    assert headless and headless[0]["spec"]["clusterIP"] == "None", "DNS must answer one address per pod"
    assert int(dns["port"]) in {p["port"] for p in headless[0]["spec"]["ports"]}


def test_the_sampling_tier_is_the_single_collector_with_its_sizing() -> None:
    base = single.load(single.BASE)
    assert SAMPLING["processors"]["tail_sampling"]["policies"] == base["processors"]["tail_sampling"]["policies"]
    assert single.pipelines(SAMPLING) == single.pipelines(base)
    assert set(SAMPLING_OVERLAY) == {"processors"}, "the overlay sizes a replica, it does not rewire"
    for name in ("sampling", "sampling-with-sentry"):
        config = TIERS[name]
        single.test_pii_step_runs_in_every_traces_and_logs_pipeline_before_sampling(config)
        single.test_spanmetrics_only_sees_tail_sampled_traces(config)
        single.test_connectors_bridge_traces_to_metrics(config)


def test_a_sampling_replica_holds_twice_decision_wait_of_its_traces() -> None:
    sampling = SAMPLING["processors"]["tail_sampling"]
    wait_s = int(sampling["decision_wait"].removesuffix("s"))
    assert sampling["num_traces"] >= 2 * wait_s * sampling["expected_new_traces_per_sec"]


def test_the_tier_files_read_no_variable_compose_does_not_pass() -> None:
    for path in (COLLECTOR / "gateway.yaml", COLLECTOR / "sampling.yaml"):
        assert not single.ENV_REF.findall(path.read_text()), path.name
        for value in single.strings_in(single.load(path)):
            assert "$" not in value, f"{path.name}: {value!r}"
