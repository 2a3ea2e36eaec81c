"""deploy/kubernetes rendered and checked without a cluster.

Each overlay is rendered (tests/deploy/kustomize.py; the same objects as ``kubectl kustomize``
where kubectl is installed), every object validates against the pinned Kubernetes version's
schemas in strict mode (kubernetes-validate), and the shape the issue asks for is checked on
the objects: probes, resources, HPA and PDB per service, non-root, read-only root file systems,
secrets by reference, every name a pod or a config file reaches resolving to a Service port.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shopfds.stack import SEED_PORTS
from tests.deploy.kustomize import Unsupported, key, render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.33.0"  # the pinned version (deploy/kubernetes/README.md)
OVERLAYS = ("dev", "production")
RENDERED = {name: render(K8S / "overlays" / name) for name in OVERLAYS}
WORKLOADS = ("Deployment", "StatefulSet")
SECRET = "shopfds-secrets"
SECRET_ENV = {"DATABASE_URL": "database-url", "REDIS_URL": "redis-url", "SHOPFDS_JWT_SECRET": "jwt-secret",
              "SHOPFDS_METRICS_TOKEN": "metrics-token", "SENTRY_DSN": "sentry-dsn"}


def of(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = of(objects, kind, name)
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_specs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o["spec"]["template"]["spec"] for o in objects if o["kind"] in WORKLOADS}


def container(objects: list[dict[str, Any]], app: str) -> dict[str, Any]:
    return dict(one(objects, "Deployment", app)["spec"]["template"]["spec"]["containers"][0])


@pytest.fixture(params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return RENDERED[request.param]


# -- the render --------------------------------------------------------------------------------

def _normalised(objects: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    out = {}
    for obj in objects:
        if obj["kind"] == "Secret":  # kustomize wraps long base64 values; compare the bytes
            obj = {**obj, "data": {k: base64.b64decode("".join(v.split())) for k, v in obj["data"].items()}}
        out[key(obj)] = obj
    return out


@pytest.mark.parametrize("directory", ["base", "overlays/dev", "overlays/production", "prometheus-operator"])
def test_the_render_equals_kubectl_kustomize(directory: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: the render is checked against it where it is")
    built = subprocess.run([kubectl, "kustomize", str(K8S / directory)], capture_output=True, text=True,
                           timeout=60, check=True).stdout
    theirs = _normalised([d for d in yaml.safe_load_all(built) if d])
    assert _normalised(render(K8S / directory)) == theirs


def test_the_render_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    cases = {"nameSuffix: -a\n": "nameSuffix",
             "configMapGenerator: [{name: y, literals: [a=b]}]\n": "hashes",
             "patches: [{target: {kind: ConfigMap}, patch: 'metadata: {labels: {a: b}}'}]\n": "strategic"}
    for extra, what in cases.items():
        (tmp_path / "kustomization.yaml").write_text("resources: [cm.yaml]\n" + extra)
        with pytest.raises(Unsupported, match=what):
            render(tmp_path)


def test_every_object_validates_against_the_pinned_kubernetes(rendered: list[dict[str, Any]]) -> None:
    for obj in rendered:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_a_misspelt_field() -> None:
    bad = yaml.safe_load(yaml.safe_dump(one(RENDERED["dev"], "Deployment", "fds")))
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/health", "port": 8001}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


# -- the services ------------------------------------------------------------------------------

@pytest.mark.parametrize("app", sorted(SEED_PORTS))
def test_each_service_runs_its_app_with_health_probes_hpa_and_pdb(rendered: list[dict[str, Any]], app: str) -> None:
    port = SEED_PORTS[app]
    spec = container(rendered, app)
    assert spec["command"][:2] == ["uvicorn", f"services.{app}.main:app"]
    assert spec["command"][spec["command"].index("--port") + 1] == str(port)
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    assert ports["http"] == port
    for probe in ("readinessProbe", "livenessProbe"):
        assert spec[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    hpa = one(rendered, "HorizontalPodAutoscaler", app)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": app}
    assert 1 <= hpa["spec"]["minReplicas"] <= one(rendered, "Deployment", app)["spec"]["replicas"]
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    pdb = one(rendered, "PodDisruptionBudget", app)
    labels = one(rendered, "Deployment", app)["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("app", sorted(SEED_PORTS))
def test_metrics_are_served_on_an_internal_port_behind_the_token(rendered: list[dict[str, Any]], app: str) -> None:
    spec = container(rendered, app)
    env = {e["name"]: e for e in spec["env"]}
    metrics_port = {p["name"]: p["containerPort"] for p in spec["ports"]}["metrics"]
    assert env["SHOPFDS_METRICS_PORT"]["value"] == str(metrics_port)
    assert env["SHOPFDS_METRICS_HOST"]["value"] == "0.0.0.0"
    service_ports = {p["targetPort"] for p in one(rendered, "Service", app)["spec"]["ports"]}
    assert service_ports == {"http"}, "the metrics port must stay out of the Service"
    for name, secret_key in SECRET_ENV.items() | ({("SHOPFDS_ADMIN_PASSWORD", "admin-password")} if app == "admin"
                                                 else set()):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == SECRET, name
        assert env[name]["valueFrom"]["secretKeyRef"]["key"] == secret_key, name
        assert "value" not in env[name]


def test_the_environment_names_settings_the_services_read(rendered: list[dict[str, Any]]) -> None:
    from otel_setup.settings import TelemetrySettings
    from services.common.settings import ServiceSettings

    accepted = set()
    for model in (ServiceSettings, TelemetrySettings):
        for field_name, field in model.model_fields.items():
            accepted.add(f"SHOPFDS_{field_name.upper()}")
            accepted |= {str(c).upper() for c in getattr(field.validation_alias, "choices", [])}
    for app in SEED_PORTS:
        for name in (e["name"] for e in container(rendered, app)["env"]):
            if name.startswith(("SHOPFDS_", "OTEL_", "SENTRY_")) and name != "SHOPFDS_ADMIN_PASSWORD":
                assert name in accepted, f"{app}: {name} is read by no settings class"


def test_every_container_is_non_root_read_only_and_bounded(rendered: list[dict[str, Any]]) -> None:
    for name, pod in pod_specs(rendered).items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for c in pod["containers"]:
            security = c["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]) & set(c["resources"]["limits"]), name
            assert c.get("readinessProbe") and c.get("livenessProbe"), name
            assert re.search(r":[\w.-]*\d", c["image"]) and not c["image"].endswith(":latest"), c["image"]


# -- names that must resolve -------------------------------------------------------------------

def test_every_config_map_and_secret_a_pod_reads_exists(rendered: list[dict[str, Any]]) -> None:
    config_maps = {o["metadata"]["name"]: o["data"] for o in of(rendered, "ConfigMap")}
    secrets = {o["metadata"]["name"]: o["data"] for o in of(rendered, "Secret")}
    production = not secrets  # production's Secret comes from the operator's secret store
    for name, pod in pod_specs(rendered).items():
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, f"{name}: {volume}"
            if "secret" in volume and not production:
                wanted = {i["key"] for i in volume["secret"].get("items", [])}
                assert wanted <= set(secrets[volume["secret"]["secretName"]]), f"{name}: {volume}"
        for c in pod["containers"]:
            for env in c.get("env", []):
                ref = env.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    assert ref["configMapKeyRef"]["key"] in config_maps[ref["configMapKeyRef"]["name"]], env
                if "secretKeyRef" in ref and not production:
                    assert ref["secretKeyRef"]["key"] in secrets[ref["secretKeyRef"]["name"]], env


def test_the_collectors_load_files_their_config_map_holds(rendered: list[dict[str, Any]]) -> None:
    files = one(rendered, "ConfigMap", "otel-collector-config")["data"]
    for name in ("otel-gateway", "otel-sampling"):
        pod = pod_specs(rendered)[name]
        mount = pod["containers"][0]["volumeMounts"][0]["mountPath"]
        configs = [a.split("=", 1)[1] for a in pod["containers"][0]["args"] if a.startswith("--config=")]
        assert configs
        for path in configs:
            assert path.startswith(mount + "/") and path.removeprefix(mount + "/") in files, (name, path)
    assert files["config.yaml"] == (ROOT / "collector" / "otelcol-config.yaml").read_text()


def _service_ports(objects: list[dict[str, Any]]) -> dict[str, set[int]]:
    return {s["metadata"]["name"]: {p["port"] for p in s["spec"].get("ports", [])} | (
        {5432, 6379} if s["spec"].get("type") == "ExternalName" else set()) for s in of(objects, "Service")}


def _urls(text: str) -> set[tuple[str, int]]:
    return {(h, int(p)) for h, p in re.findall(r"(?:https?://|\b)([a-z][a-z0-9-]*):(\d{2,5})\b", text)
            if h not in ("localhost", "http", "https")}


def test_every_host_a_pod_or_config_names_is_a_service_port(rendered: list[dict[str, Any]]) -> None:
    services = _service_ports(rendered)
    texts = [yaml.safe_dump(c.get("env", [])) for pod in pod_specs(rendered).values() for c in pod["containers"]]
    texts += [str(v) for cm in of(rendered, "ConfigMap")
              if cm["metadata"]["name"] in ("prometheus-config", "grafana-datasources") for v in cm["data"].values()]
    texts += [" ".join(c.get("args", [])) for pod in pod_specs(rendered).values() for c in pod["containers"]]
    texts += [base64.b64decode(v).decode() for s in of(rendered, "Secret") for v in s["data"].values()]
    collector = yaml.safe_load(one(rendered, "ConfigMap", "otel-collector-config")["data"]["config.yaml"])
    texts.append(collector["exporters"]["otlp/tempo"]["endpoint"].split(":-", 1)[-1].rstrip("}"))
    hosts = {h for t in texts for h in _urls(t)}
    assert {("otel-gateway", 4318), ("vminsert", 8480), ("prometheus", 9090), ("tempo", 3200),
            ("tempo", 4317), ("vmstorage", 8400)} <= hosts
    assert ("postgres", 5432) in hosts or not of(rendered, "Secret")
    for host, port in hosts:
        name = host.split(".")[0]  # vmstorage-0.vmstorage: the StatefulSet's pod behind its headless Service
        service = host.split(".")[1] if "." in host else name
        assert service in services, f"{host}:{port} is no Service"
        assert port in services[service], f"{host}: Service {service} has no port {port}"


def test_the_gateway_resolves_the_sampling_statefulsets_headless_service(rendered: list[dict[str, Any]]) -> None:
    gateway = yaml.safe_load(one(rendered, "ConfigMap", "otel-collector-config")["data"]["gateway.yaml"])
    dns = gateway["exporters"]["loadbalancing"]["resolver"]["dns"]
    service = one(rendered, "Service", dns["hostname"])
    assert service["spec"]["clusterIP"] == "None"
    assert int(dns["port"]) in {p["port"] for p in service["spec"]["ports"]}
    sampling = one(rendered, "StatefulSet", "otel-sampling")
    assert sampling["spec"]["serviceName"] == dns["hostname"]
    assert service["spec"]["selector"].items() <= sampling["spec"]["template"]["metadata"]["labels"].items()


def test_every_service_selects_pods_that_have_its_target_ports(rendered: list[dict[str, Any]]) -> None:
    workloads = [o for o in rendered if o["kind"] in WORKLOADS]
    for service in of(rendered, "Service"):
        if service["spec"].get("type") == "ExternalName":
            continue
        selector = service["spec"]["selector"].items()
        pods = [w for w in workloads if selector <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert pods, f"Service {service['metadata']['name']} selects no pod"
        for port in service["spec"]["ports"]:
            names = {p["name"] for w in pods for c in w["spec"]["template"]["spec"]["containers"]
                     for p in c.get("ports", [])}
            assert port["targetPort"] in names, (service["metadata"]["name"], port)


def _meta(template: dict[str, Any], port: dict[str, Any]) -> dict[str, str]:
    """The kubernetes_sd (role pod) meta labels of one container port of a pod template."""
    meta = {"__meta_kubernetes_pod_container_port_name": port["name"]}
    for label, value in template["metadata"]["labels"].items():
        meta["__meta_kubernetes_pod_label_" + re.sub(r"[^A-Za-z0-9_]", "_", label)] = value
    return meta


def test_the_prometheus_jobs_keep_the_ports_the_pods_name(rendered: list[dict[str, Any]]) -> None:
    config = yaml.safe_load(one(rendered, "ConfigMap", "prometheus-config")["data"]["prometheus.yml"])
    targets = [_meta(w["spec"]["template"], port) for w in rendered if w["kind"] in WORKLOADS
               for c in w["spec"]["template"]["spec"]["containers"] for port in c.get("ports", [])]
    kept = {}
    for job in (j for j in config["scrape_configs"] if "kubernetes_sd_configs" in j):
        keep = next(r for r in job["relabel_configs"] if r.get("action") == "keep")
        kept[job["job_name"]] = [t for t in targets if re.fullmatch(
            keep["regex"], ";".join(t.get(s, "") for s in keep["source_labels"]))]
    pods = {name: len(found) for name, found in kept.items()}
    assert pods["shopfds-services"] == 4, "one metrics port per service"
    assert pods["otel-collector"] == 2 and pods["otel-sampling"] == 1, pods
    assert config["remote_write"][0]["url"].startswith("http://vminsert:8480/insert/0/prometheus")


def test_the_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    """Debian's promtool has no kubernetes_sd (the package is built without it): the check runs
    on a copy whose kubernetes_sd jobs scrape a static target instead, everything else as is."""
    promtool = shutil.which("promtool")
    if promtool is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("promtool not installed (make prometheus)")
    config = yaml.safe_load((K8S / "base" / "prometheus.yml").read_text())
    token = tmp_path / "metrics-token"
    token.write_text("token")
    config["rule_files"] = [str(ROOT / "prometheus" / "rules" / "*.yml")]
    for job in config["scrape_configs"]:
        if job.pop("kubernetes_sd_configs", None) is not None:
            job["static_configs"] = [{"targets": ["pod:9464"]}]
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(token)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([str(promtool), "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# -- the overlays ------------------------------------------------------------------------------

def test_dev_brings_its_secret_and_production_expects_one() -> None:
    dev = one(RENDERED["dev"], "Secret", SECRET)
    wanted = set(SECRET_ENV.values()) | {"admin-password", "grafana-admin-password"}
    assert wanted <= set(dev["data"])
    assert dev["metadata"]["namespace"] == "shopfds"
    assert not of(RENDERED["production"], "Secret"), "production secrets come from the secret store"
    env = yaml.safe_load(yaml.safe_dump(one(RENDERED["production"], "ConfigMap", "shopfds-env")))["data"]
    assert env["ENVIRONMENT"] == "production"
    assert one(RENDERED["dev"], "ConfigMap", "shopfds-env")["data"]["ENVIRONMENT"] == "development"


def test_everything_lands_in_the_shopfds_namespace(rendered: list[dict[str, Any]]) -> None:
    for obj in rendered:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == "shopfds", key(obj)


def test_production_pulls_from_a_registry_and_keeps_replicas_for_disruptions() -> None:
    production = RENDERED["production"]
    for app in SEED_PORTS:
        assert container(production, app)["image"].startswith("registry.example.com/shopfds/app:")
        assert one(production, "Deployment", app)["spec"]["replicas"] >= 2  # a PDB of 1 leaves one serving
    assert one(production, "StatefulSet", "otel-sampling")["spec"]["replicas"] >= 2


@pytest.mark.parametrize(("directory", "pattern"), [("prometheus", "rules/*.yml"), ("dashboards", "*.json"),
                                                    ("collector", "*.yaml")])
def test_the_config_map_lists_hold_every_file_compose_mounts(directory: str, pattern: str) -> None:
    """A rules file, dashboard or collector config added for compose must reach the cluster too."""
    spec = yaml.safe_load((ROOT / directory / "kustomization.yaml").read_text())
    listed = {item.rpartition("=")[2] for gen in spec["configMapGenerator"] for item in gen.get("files", [])}
    on_disk = {p.relative_to(ROOT / directory).as_posix() for p in (ROOT / directory).glob(pattern)}
    assert on_disk - {"kustomization.yaml"} == listed
