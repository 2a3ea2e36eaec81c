"""docker-compose.yml, the Dockerfile and .env.example, checked without a Docker engine:

- the compose file validates against the compose-spec JSON schema (vendored in
  tests/pipeline/schemas/compose-spec.json, from check-jsonschema's ``vendor.compose-spec``);
- every host path it mounts or builds from exists, every ${VAR} is documented in .env.example;
- seed ports; healthchecks; the shop waits for healthy databases and services, never for a
  telemetry backend (started is enough: telemetry failing costs requests nothing);
- the collector has a memory limit its memory_limiter is sized against; the Sentry overlay and
  Grafana's Sentry link are picked by the variables that configure Sentry, interpolated as
  compose does; one metric path (no OTLP push of the services' metrics, no OTLP receiver);
- the services' environment names settings the services really read, and the hosts named in
  the Prometheus, collector and Grafana configs are compose services listening on those ports.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shopfds.stack import SEED_PORTS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
APPS = tuple(SEED_PORTS)
PORTS = {**SEED_PORTS, "prometheus": 9090, "grafana": 3002}
# ${VAR}, ${VAR:-default}, ${VAR:?error}; "$${...}" is an escaped literal.
VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?\-+][^}]*)?\}")


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


_EXPR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+?])([^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation (compose-spec "Interpolation"): ${VAR}, ${VAR:-default},
    ${VAR-default}, ${VAR:+alternative}, ${VAR+alternative}, ${VAR:?error}; "$$" is a "$"."""
    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        value, is_set = env.get(name, ""), name in env
        present = bool(value) if op.startswith(":") else is_set
        if op.endswith("-"):
            return value if present else arg
        if op.endswith("+"):
            return arg if present else ""
        if op.endswith("?") and not present:
            raise ValueError(f"{name}: {arg}")
        return value

    parts = text.split("$$")
    return "$".join(_EXPR.sub(one, part) for part in parts)


def resolved(env: dict[str, str]) -> dict[str, Any]:
    """docker-compose.yml as compose reads it with ``env`` (the required secrets filled in)."""
    full = {"POSTGRES_PASSWORD": "p", "SHOPFDS_JWT_SECRET": "s", "SHOPFDS_ADMIN_PASSWORD": "a", **env}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return interpolate(node, full) if isinstance(node, str) else node

    return dict(walk(_compose()))


def test_the_interpolation_reads_like_compose() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("a${SET:+-on}b ${EMPTY:+-on} ${UNSET:-d} ${EMPTY-d} $${SET}", env) == "a-onb  d  ${SET}"
    with pytest.raises(ValueError):
        interpolate("${EMPTY:?needed}", env)


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of the bind mounts of an interpolated service."""
    return {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])
            if isinstance(v, str) and v.startswith(".")}


def _services() -> dict[str, Any]:
    return dict(_compose()["services"])


def _env_example() -> set[str]:
    return {line.split("=", 1)[0].strip() for line in (ROOT / ".env.example").read_text().splitlines()
            if "=" in line and not line.lstrip().startswith("#")}


def _strings(node: Any) -> list[str]:
    """Every key and string value of parsed YAML (interpolation applies to values, not comments)."""
    if isinstance(node, dict):
        return [str(k) for k in node] + [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def _variables(node: Any) -> set[str]:
    return {name for text in _strings(node) for name in VAR.findall(text)}


def _check_jsonschema() -> str:
    found = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or shutil.which("check-jsonschema")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("check-jsonschema is not installed (pip install check-jsonschema)")
        pytest.skip("check-jsonschema not installed")
    return found


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_check_jsonschema(), "--schemafile", str(SCHEMA), str(path)],
                          capture_output=True, text=True, timeout=60)


def test_compose_file_validates_against_the_compose_spec_schema(tmp_path: Path) -> None:
    result = _validate(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr
    # The validator must be able to say no: a misspelt healthcheck key is rejected.
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("start_period:", "start_periode:", 1))
    assert _validate(broken).returncode != 0


@pytest.mark.parametrize("env", [{}, {"SENTRY_OTLP_ENDPOINT": "https://o1.ingest.sentry.io/api/2/integration/otlp",
                                      "SENTRY_ORG": "acme"}], ids=["no-sentry", "sentry"])
def test_every_mounted_or_built_host_path_exists(env: dict[str, str]) -> None:
    compose = resolved(env)
    named = set(compose.get("volumes") or {})
    missing = []
    for name, service in compose["services"].items():
        build = service.get("build")
        if build is not None:
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            for path in (ROOT / context, ROOT / context / dockerfile):
                if not path.exists():
                    missing.append(f"{name}: build {path}")
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if source.startswith((".", "/")):
                if not (ROOT / source).exists():
                    missing.append(f"{name}: {source}")
            elif source not in named:
                missing.append(f"{name}: named volume {source} is not declared")
    assert not missing, missing


def test_every_variable_is_documented_in_env_example() -> None:
    used = _variables(_compose())
    assert used, "no ${VAR} found: the pattern is broken"
    assert used - _env_example() == set(), "add to .env.example: " + ", ".join(sorted(used - _env_example()))


def test_the_collector_variables_are_passed_and_documented() -> None:
    collector = _services()["otel-collector"]
    passed = set(collector.get("environment") or {})
    read = set()
    for config in (ROOT / "collector").glob("*.yaml"):
        read |= set(re.findall(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)", config.read_text()))
    assert read, "collector/*.yaml reads no ${env:VAR}"
    assert read <= passed, f"not passed to otel-collector: {sorted(read - passed)}"
    example = ROOT / "collector" / "collector.env.example"
    if example.exists():
        listed = {line.split("=", 1)[0] for line in example.read_text().splitlines()
                  if "=" in line and not line.startswith("#")}
        assert listed <= _env_example(), f"collector variables missing from .env.example: {listed - _env_example()}"


def test_seed_ports_are_published() -> None:
    services = _services()
    for name, port in PORTS.items():
        published = {int(str(p).split(":")[-2]) for p in services[name].get("ports", []) if ":" in str(p)}
        assert port in published, f"{name}: {services[name].get('ports')}"
    assert "3002:3000" in services["grafana"]["ports"]


TELEMETRY = {"otel-collector", "tempo", "prometheus", "alertmanager", "grafana"}


def test_nothing_waits_for_a_telemetry_backend_to_be_healthy() -> None:
    services = _services()
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            wanted = "service_started" if dependency in TELEMETRY else "service_healthy"
            assert condition == {"condition": wanted}, f"{name} -> {dependency}: {condition}"
    for app in APPS:
        assert "otel-collector" in services[app]["depends_on"]


def test_healthchecks_probe_the_live_process() -> None:
    services = _services()
    for name, service in services.items():
        check = service.get("healthcheck") or {}
        if name in ("otel-collector", "otel-gateway", "otel-sampling"):
            # FROM scratch: no client inside to probe the health_check extension, and nothing
            # waits for it; a healthcheck, if one is added, must probe that extension.
            assert not check or "13133" in " ".join(check["test"]), check
            assert "validate" not in " ".join(check.get("test", []))  # checks a file, not a collector
            continue
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
    for app in APPS:  # GET /health on the seed port, from inside the container
        assert f"127.0.0.1:{SEED_PORTS[app]}/health" in " ".join(services[app]["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])


def _mib(size: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)b?", str(size).lower()).groups()  # type: ignore[union-attr]
    return float(number) * {"": 1 / 2**20, "k": 1 / 1024, "m": 1, "g": 1024}[unit]


def test_the_collector_has_a_memory_limit_its_memory_limiter_is_sized_against() -> None:
    collector = _services()["otel-collector"]
    assert "mem_limit" in collector, "without a cgroup limit, limit_percentage is a share of the host"
    limit = _mib(collector["mem_limit"])
    config = yaml.safe_load((ROOT / "collector" / "otelcol-config.yaml").read_text())
    limiter = config["processors"]["memory_limiter"]
    assert "limit_percentage" not in limiter and "spike_limit_percentage" not in limiter
    assert 0 < limiter["spike_limit_mib"] < limiter["limit_mib"] <= 0.85 * limit, (limiter, limit)


def test_apps_run_from_the_image_with_uvicorn_on_their_seed_port() -> None:
    services = _services()
    for app in APPS:
        command = services[app]["command"]
        assert command[:2] == ["uvicorn", f"services.{app}.main:app"], command
        assert command[command.index("--host") + 1] == "0.0.0.0"
        assert command[command.index("--port") + 1] == str(SEED_PORTS[app])
        assert services[app]["build"] == "." and (ROOT / "services" / app).is_dir()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert re.search(r"^RUN pip install \.", dockerfile, re.M)
    for source in re.findall(r"^COPY (?!--)(.+) \S+$", dockerfile, re.M):
        for item in source.split():
            assert (ROOT / item).exists(), f"Dockerfile copies missing {item}"
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    # docs/: the admin service serves it at /runbooks/, where the alerts' runbook links lead.
    assert not ignored & {"services", "otel_setup", "shopfds", "docs", "pyproject.toml", "README.md"}
    assert re.search(r"^COPY docs \S+$", dockerfile, re.M)


def test_app_environment_names_settings_the_services_read() -> None:
    from services.common.settings import ServiceSettings

    env = _services()["ecommerce"]["environment"]
    for name in ("DATABASE_URL", "REDIS_URL", "SENTRY_DSN", "ENVIRONMENT", "SHOPFDS_JWT_SECRET"):
        assert name in env, name
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert env["OTEL_METRICS_EXPORTER"] == "none"  # metrics are scraped, not also pushed
    from otel_setup.settings import TelemetrySettings

    accepted = set()
    for field_name, field in {**ServiceSettings.model_fields, **TelemetrySettings.model_fields}.items():
        accepted.add(f"SHOPFDS_{field_name.upper()}")
        choices = getattr(field.validation_alias, "choices", [])
        accepted |= {str(c).upper() for c in choices}
    for app in APPS:
        app_env = _services()[app]["environment"]
        for name in app_env:
            if name.startswith("SHOPFDS_") and name != "SHOPFDS_ADMIN_PASSWORD":
                assert name in accepted, f"{app}: {name} is not a service or telemetry setting"
        for other, port in SEED_PORTS.items():
            assert app_env[f"SHOPFDS_{other.upper()}_URL"] == f"http://{other}:{port}"


def test_the_services_push_traces_and_logs_to_the_collector_but_not_their_metrics(monkeypatch, tmp_path) -> None:
    import otel_setup
    from otel_setup.settings import load_settings

    for name, value in resolved({})["services"]["fds"]["environment"].items():
        if name.startswith("OTEL_"):
            monkeypatch.setenv(name, str(value))
    telemetry = otel_setup.configure("fds", settings=load_settings(trace_store_dir=str(tmp_path / "traces")))
    try:
        assert "otlp" in telemetry.span_exporters
        assert telemetry.otlp_metric_reader is None, "a second, OTLP copy of every metric"
    finally:
        telemetry.shutdown()


DSN = "https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/2"


@pytest.mark.parametrize("env", [{"SENTRY_DSN": DSN},
                                 {"SENTRY_DSN": DSN, "SENTRY_OTLP_ENDPOINT": "https://o1.ingest.sentry.io/api/2/integration/otlp",
                                  "SENTRY_AUTH_HEADER": "sentry sentry_key=0123456789abcdef0123456789abcdef"}],
                         ids=["dsn-only", "dsn-and-collector-overlay"])
def test_with_a_sentry_dsn_traces_reach_sentry_once(env: dict[str, str], monkeypatch, tmp_path) -> None:
    """From the services straight to Sentry, or through the collector's overlay: never neither,
    never both."""
    import otel_setup
    from otel_setup.settings import load_settings
    from tests.pipeline.test_collector_config import deployed

    for name, value in resolved(env)["services"]["fds"]["environment"].items():
        if name.startswith(("OTEL_", "SENTRY_", "SHOPFDS_SENTRY")):
            monkeypatch.setenv(name, str(value))
    telemetry = otel_setup.configure("fds", settings=load_settings(trace_store_dir=str(tmp_path / "traces")))
    try:
        direct = "sentry" in telemetry.span_exporters
    finally:
        telemetry.shutdown()
    collector, _ = deployed(env)
    forwarded = "otlphttp/sentry" in collector["service"]["pipelines"]["traces"]["exporters"]
    assert direct != forwarded, f"direct {direct}, through the collector {forwarded}"


def _hosts(text: str) -> set[tuple[str, int]]:
    found = set(re.findall(r"(?:https?://)?\b([a-z][a-z0-9-]*):(\d{2,5})\b", text))
    return {(host, int(port)) for host, port in found if host not in ("localhost", "http", "https")}


def _listens(service: str, port: int) -> bool:
    spec = _services()[service]
    text = yaml.safe_dump(spec) + "\n".join(
        (ROOT / v.split(":", 1)[0]).read_text() for v in spec.get("volumes", [])
        if isinstance(v, str) and v.startswith(".") and (ROOT / v.split(":", 1)[0]).is_file())
    known = {"prometheus": {9090}, "alertmanager": {9093}, "grafana": {3000}, "tempo": {3200, 4317, 4318},
             "postgres": {5432}, "redis": {6379}, "otel-collector": {4317, 4318, 8888, 8889, 13133}}
    return port in known.get(service, set()) or str(port) in text


@pytest.mark.parametrize("config", ["prometheus/prometheus.yml", "collector/otelcol-config.yaml",
                                    "grafana/provisioning/datasources/datasources.yml",
                                    "grafana/provisioning/datasources-sentry/datasources.yml"])
def test_hosts_named_in_configs_are_compose_services(config: str) -> None:
    path = ROOT / config
    if not path.exists():
        pytest.fail(f"{config} is mounted by docker-compose.yml but missing")
    services = _services()
    hosts = {(h, p) for h, p in _hosts(path.read_text()) if h in services or "." not in h}
    assert hosts, f"no host:port found in {config}"
    for host, port in hosts:
        assert host in services, f"{config}: {host}:{port} is not a compose service"
        assert _listens(host, port), f"{config}: {host} does not listen on {port}"


def test_prometheus_flags_and_rule_files_are_mounted() -> None:
    prom = _services()["prometheus"]
    assert "--enable-feature=exemplar-storage" in prom["command"]
    # No OTLP receiver: an unauthenticated write endpoint on the published port, for a copy of
    # metrics that are scraped anyway.
    assert not [flag for flag in prom["command"] if "otlp" in flag], prom["command"]
    mounts = {v.split(":")[1]: ROOT / v.split(":")[0] for v in prom["volumes"] if v.startswith(".")}
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    for pattern in config.get("rule_files", []):
        target = (Path("/etc/prometheus") / pattern).as_posix()  # relative to the config file
        mount = next((m for m in mounts if target.startswith(m + "/")), None)
        assert mount is not None, f"rule_files {pattern} -> {target} is not mounted"
        assert list(mounts[mount].glob(target[len(mount) + 1:])), f"no host file matches {pattern}"


def _sentry_links(datasources: dict[str, Any]) -> list[dict[str, Any]]:
    prometheus = next(d for d in datasources["datasources"] if d["type"] == "prometheus")
    return [d for d in prometheus["jsonData"]["exemplarTraceIdDestinations"] if "sentry" in d.get("url", "")]


@pytest.mark.parametrize("org", ["", "acme"])
def test_grafana_links_to_sentry_only_when_sentry_is_configured(org: str) -> None:
    grafana = resolved({"SENTRY_ORG": org} if org else {})["services"]["grafana"]
    mounts = _mounts(grafana)
    provider = yaml.safe_load((ROOT / mounts["/etc/grafana/provisioning/dashboards"] / "dashboards.yml").read_text())
    assert provider["providers"][0]["folder"] == "ShopFDS"
    assert mounts[provider["providers"][0]["options"]["path"]] == "./dashboards"
    assert list((ROOT / "dashboards").glob("*.json"))
    mounted = ROOT / mounts["/etc/grafana/provisioning/datasources"] / "datasources.yml"
    datasources = yaml.safe_load(mounted.read_text())
    links = _sentry_links(datasources)
    if not org:
        assert links == [], "a Sentry link with no organization leads nowhere"
        return
    assert len(links) == 1 and "${SENTRY_ORG}" in links[0]["url"] and links[0].get("urlDisplayLabel")
    assert grafana["environment"]["SENTRY_ORG"] == org  # Grafana expands ${SENTRY_ORG} from it
    plain = yaml.safe_load((ROOT / "grafana/provisioning/datasources/datasources.yml").read_text())
    for datasource in datasources["datasources"]:  # the same data sources, plus the one link
        if datasource["type"] == "prometheus":
            datasource["jsonData"]["exemplarTraceIdDestinations"].remove(links[0])
    assert datasources == plain


def test_grafana_environment_has_every_variable_its_provisioning_reads() -> None:
    grafana = _services()["grafana"]
    env = grafana["environment"]
    assert {"GF_SECURITY_ADMIN_USER", "GF_SECURITY_ADMIN_PASSWORD"} <= set(env)
    for path in (ROOT / "grafana" / "provisioning").rglob("*.y*ml"):  # Grafana expands ${VAR} there
        for name in _variables(yaml.safe_load(path.read_text())):
            assert name in env, f"{path.name} reads ${{{name}}}, not in grafana's environment"


def test_every_image_is_pinned() -> None:
    for name, service in _services().items():
        image = service.get("image", "")
        if "build" in service:
            continue
        tag = image.rsplit(":", 1)[-1] if ":" in image else ""
        assert re.search(r"\d+\.\d+", tag) and tag != "latest", f"{name}: {image} is not pinned"
