"""collector/otelcol-config.yaml (+ the Sentry overlay): wiring, ordering, sampling, PII regexes.

There is no otelcol binary here, so the config is checked as data: every reference resolves,
every component is used, processor order holds, the policies the exemplar guarantee rests on
exist, and the PII regexes (RE2, written in the subset Python's ``re`` reads alike) are run
against sample strings.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_setup.catalog import ENGINES, FDS_SLA_SECONDS, Attr

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR = ROOT / "collector"
BASE = COLLECTOR / "otelcol-config.yaml"
SENTRY = COLLECTOR / "otelcol-sentry.yaml"
ENV_EXAMPLE = COLLECTOR / "collector.env.example"
KINDS = ("receivers", "processors", "exporters", "connectors")


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def merge(base: Any, overlay: Any) -> Any:
    """The collector's merge of --config files: maps merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for key, value in overlay.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    return overlay


def ctype(component_id: str) -> str:
    return component_id.split("/", 1)[0]


CONFIGS = {"base": load(BASE), "with-sentry": merge(load(BASE), load(SENTRY))}


@pytest.fixture(params=sorted(CONFIGS))
def config(request: pytest.FixtureRequest) -> dict[str, Any]:
    return CONFIGS[request.param]


def pipelines(config: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    return config["service"]["pipelines"]


def pipelines_of(config: dict[str, Any], signal: str) -> dict[str, dict[str, list[str]]]:
    return {name: p for name, p in pipelines(config).items() if name.split("/")[0] == signal}


# -- wiring ------------------------------------------------------------------------------------

def test_every_pipeline_reference_is_defined(config: dict[str, Any]) -> None:
    connectors = set(config.get("connectors", {}))
    for name, pipe in pipelines(config).items():
        for rid in pipe["receivers"]:
            assert rid in config["receivers"] or rid in connectors, f"{name}: receiver {rid} undefined"
        for pid in pipe.get("processors", []):
            assert pid in config["processors"], f"{name}: processor {pid} undefined"
        for eid in pipe["exporters"]:
            assert eid in config["exporters"] or eid in connectors, f"{name}: exporter {eid} undefined"
    for ext in config["service"]["extensions"]:
        assert ext in config["extensions"]


def test_every_defined_component_is_used(config: dict[str, Any]) -> None:
    used = {kind: set() for kind in KINDS}
    for pipe in pipelines(config).values():
        used["receivers"].update(pipe["receivers"])
        used["processors"].update(pipe.get("processors", []))
        used["exporters"].update(pipe["exporters"])
    used["connectors"] = used["receivers"] & used["exporters"]
    for kind in KINDS:
        defined = set(config.get(kind, {}))
        assert defined <= used[kind], f"unused {kind}: {sorted(defined - used[kind])}"
    assert set(config["extensions"]) == set(config["service"]["extensions"])


def test_connectors_bridge_traces_to_metrics(config: dict[str, Any]) -> None:
    for cid in config["connectors"]:
        as_exporter = [n for n, p in pipelines(config).items() if cid in p["exporters"]]
        as_receiver = [n for n, p in pipelines(config).items() if cid in p["receivers"]]
        assert as_exporter and as_receiver, f"connector {cid} must end one pipeline and start another"
        if ctype(cid) == "spanmetrics":
            assert all(n.split("/")[0] == "traces" for n in as_exporter)
            assert all(n.split("/")[0] == "metrics" for n in as_receiver)


def test_memory_limiter_first_and_batch_last(config: dict[str, Any]) -> None:
    for name, pipe in pipelines(config).items():
        procs = [ctype(p) for p in pipe["processors"]]
        assert procs[0] == "memory_limiter", f"{name}: {procs}"
        assert procs[-1] == "batch", f"{name}: {procs}"


def test_pii_step_runs_in_every_traces_and_logs_pipeline_before_sampling(config: dict[str, Any]) -> None:
    for signal in ("traces", "logs"):
        found = pipelines_of(config, signal)
        assert found, f"no {signal} pipeline"
        for name, pipe in found.items():
            procs = pipe["processors"]
            pii = [p for p in procs if p == "transform/pii" or ctype(p) == "redaction"]
            assert pii, f"{name} has no redaction/transform step: {procs}"
            if "tail_sampling" in procs:
                assert procs.index(pii[0]) < procs.index("tail_sampling")


def test_otlp_receiver_listens_on_grpc_and_http() -> None:
    protocols = CONFIGS["base"]["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")


def test_health_check_extension() -> None:
    assert "health_check" in CONFIGS["base"]["service"]["extensions"]


# -- spanmetrics and exemplars -----------------------------------------------------------------

def test_spanmetrics_exemplars_on_unit_pinned_engine_dimension() -> None:
    spanmetrics = CONFIGS["base"]["connectors"]["spanmetrics"]
    assert spanmetrics["exemplars"]["enabled"] is True
    assert spanmetrics["histogram"]["unit"] == "s"
    assert Attr.FDS_ENGINE in {d["name"] for d in spanmetrics["dimensions"]}


def test_spanmetrics_only_sees_tail_sampled_traces(config: dict[str, Any]) -> None:
    """Exemplars must name kept traces (collector-contrib issue 30319)."""
    feeding = [p for p in pipelines_of(config, "traces").values() if "spanmetrics" in p["exporters"]]
    assert feeding
    for pipe in feeding:
        assert "tail_sampling" in pipe["processors"]


def test_spanmetrics_buckets_have_the_sla_and_engine_budget_edges() -> None:
    buckets = CONFIGS["base"]["connectors"]["spanmetrics"]["histogram"]["explicit"]["buckets"]
    for edge in ("30ms", "40ms", "50ms", "100ms", "200ms"):
        assert edge in buckets


def test_metrics_reach_prometheus_with_exemplars(config: dict[str, Any]) -> None:
    exporters = {eid for p in pipelines_of(config, "metrics").values() for eid in p["exporters"]}
    prom = [eid for eid in exporters if ctype(eid) == "prometheus"]
    assert prom, exporters
    assert config["exporters"][prom[0]]["enable_open_metrics"] is True


def test_traces_go_to_the_trace_store(config: dict[str, Any]) -> None:
    for pipe in pipelines_of(config, "traces").values():
        assert "otlp/tempo" in pipe["exporters"]
    assert config["exporters"]["otlp/tempo"]["endpoint"].startswith("${env:TEMPO_OTLP_GRPC_ENDPOINT")


SENTRY_ENV = {"SENTRY_OTLP_ENDPOINT": "https://o1.ingest.sentry.io/api/2/integration/otlp",
              "SENTRY_AUTH_HEADER": "sentry sentry_key=abc", "SENTRY_DSN": "https://abc@o1.ingest.sentry.io/2"}


def deployed(env: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The config the compose collector runs with ``env``: its --config files, read from the
    host files mounted at those paths and merged in order, and the collector's environment."""
    from tests.pipeline.test_compose import _mounts, resolved

    collector = resolved(env)["services"]["otel-collector"]
    mounts = _mounts(collector)
    files = [arg.split("=", 1)[1] for arg in collector["command"] if arg.startswith("--config=")]
    merged: dict[str, Any] = {}
    for path in files:
        merged = merge(merged, load(ROOT / mounts[path]))
    return merged, {k: str(v) for k, v in collector["environment"].items()}


def _env_value(text: str, env: dict[str, str]) -> str:
    """``${env:NAME}`` / ``${env:NAME:-default}`` as the collector's env provider resolves them."""
    return re.sub(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}",
                  lambda m: env.get(m.group(1)) or (m.group(2) or ""), text)


@pytest.mark.parametrize("env", [{}, SENTRY_ENV, {**SENTRY_ENV, "COLLECTOR_OVERLAY": "sentry.yaml",
                                                "SENTRY_OTLP_TRACES_ENDPOINT": "https://o1.ingest.sentry.io/t"}],
                         ids=["no-sentry", "sentry", "sentry-one-signal-endpoint"])
def test_every_otlphttp_exporter_has_a_url_for_every_signal_it_serves(env: dict[str, str]) -> None:
    """otlphttpexporter (core v0.135.0, factory.go composeSignalURL): per signal, its
    ``<signal>_endpoint`` or else ``endpoint`` + /v1/<signal>; neither stops the collector."""
    config, collector_env = deployed(env)
    for name, pipe in pipelines(config).items():
        for exporter in (e for e in pipe["exporters"] if ctype(e) == "otlphttp"):
            settings = config["exporters"][exporter] or {}
            signal = name.split("/")[0]
            url = _env_value(str(settings.get(f"{signal}_endpoint") or settings.get("endpoint") or ""), collector_env)
            assert url.startswith("https://"), f"{exporter} in {name}: no URL ({settings})"


def test_sentry_gets_traces_and_logs_exactly_when_sentry_is_configured() -> None:
    without, _ = deployed({})
    assert "otlphttp/sentry" not in without.get("exporters", {})
    merged, env = deployed(SENTRY_ENV)
    sentry = merged["exporters"]["otlphttp/sentry"]
    # One combined endpoint: the exporter appends /v1/traces and /v1/logs.
    assert _env_value(sentry["endpoint"], env) == SENTRY_ENV["SENTRY_OTLP_ENDPOINT"]
    assert not {"traces_endpoint", "logs_endpoint"} & set(sentry)
    assert _env_value(sentry["headers"]["x-sentry-auth"], env) == SENTRY_ENV["SENTRY_AUTH_HEADER"]
    assert sentry["compression"] == "gzip"
    for signal in ("traces", "logs"):
        for pipe in pipelines_of(merged, signal).values():
            assert "otlphttp/sentry" in pipe["exporters"]
    # The overlay restates whole exporter lists: nothing of the base may be lost.
    for name, pipe in pipelines(CONFIGS["base"]).items():
        assert set(pipe["exporters"]) <= set(pipelines(merged)[name]["exporters"]) | {"debug"}


def test_the_sentry_otlp_endpoint_is_the_one_the_sdk_derives_from_the_dsn() -> None:
    from otel_setup.sentry import sentry_otlp_endpoint

    traces_url, headers = sentry_otlp_endpoint(SENTRY_ENV["SENTRY_DSN"])
    assert traces_url.rstrip("/") == SENTRY_ENV["SENTRY_OTLP_ENDPOINT"] + "/v1/traces"
    assert headers["x-sentry-auth"].lower().startswith(SENTRY_ENV["SENTRY_AUTH_HEADER"].lower() + ",")


OLD_SEMCONV = {"http.method", "http.status_code", "http.target", "http.url", "http.scheme", "http.route_template",
               "db.statement", "db.system", "db.name", "net.peer.name", "net.peer.port", "net.host.name"}


def _attribute_keys(config: dict[str, Any]) -> set[str]:
    """Span attribute names the collector reads: span metrics dimensions, tail-sampling keys, OTTL."""
    keys = {d["name"] for d in config["connectors"]["spanmetrics"]["dimensions"]}
    for policy in config["processors"]["tail_sampling"]["policies"]:
        keys |= {v["key"] for v in policy.values() if isinstance(v, dict) and "key" in v}
    keys |= set(re.findall(r'attributes\["([^"]+)"\]', yaml.safe_dump(config)))
    return keys


def test_the_collector_reads_the_attribute_names_the_services_write() -> None:
    """The catalog's own fds.* names, and the stable semantic conventions the services opt in to
    (otel_setup/semconv.py): an old name (http.status_code) never matches and is dropped."""
    keys = _attribute_keys(CONFIGS["base"])
    ours = {getattr(Attr, k) for k in dir(Attr) if k.isupper()}
    assert keys and keys <= ours, sorted(keys - ours)
    assert not keys & OLD_SEMCONV
    assert {Attr.HTTP_RESPONSE_STATUS_CODE, Attr.FDS_ENGINE} <= keys


def test_the_services_metrics_take_one_path() -> None:
    """The services' metrics are scraped; the collector takes no OTLP metrics that would be a
    second copy with other job/instance labels (service.namespace/name, service.instance.id)."""
    for name, pipe in pipelines_of(CONFIGS["base"], "metrics").items():
        assert pipe["receivers"] == ["spanmetrics"], (name, pipe["receivers"])


def test_internal_counters_are_exposed_with_the_total_suffix_the_alerts_use() -> None:
    """A readers list replaces the collector's default one (service/telemetry/otelconftelemetry
    factory.go, without_type_suffix: true); otelconf v0.3.0 adds _total unless it is true."""
    readers = CONFIGS["base"]["service"]["telemetry"]["metrics"]["readers"]
    prometheus = [r["pull"]["exporter"]["prometheus"] for r in readers if "prometheus" in r["pull"]["exporter"]]
    assert prometheus and all(p.get("without_type_suffix") is False and p["port"] == 8888 for p in prometheus)


# -- tail sampling -----------------------------------------------------------------------------

def policies() -> dict[str, dict[str, Any]]:
    found = CONFIGS["base"]["processors"]["tail_sampling"]["policies"]
    return {p["type"]: p for p in found}


def test_tail_sampling_keeps_errors() -> None:
    assert "ERROR" in policies()["status_code"]["status_code"]["status_codes"]


def test_tail_sampling_keeps_traces_slower_than_the_fds_sla() -> None:
    assert policies()["latency"]["latency"]["threshold_ms"] == int(FDS_SLA_SECONDS * 1000)
    assert "upper_threshold_ms" not in policies()["latency"]["latency"]


def test_tail_sampling_keeps_block_and_hold_decisions() -> None:
    decision = policies()["string_attribute"]["string_attribute"]
    assert decision["key"] == Attr.FDS_DECISION
    assert {"block", "hold"} <= set(decision["values"])


def test_tail_sampling_keeps_engines_over_their_budget() -> None:
    conditions = policies()["ottl_condition"]["ottl_condition"]["span"]
    budgets_ns = {"rule": 30_000_000, "ml": 40_000_000, "cti": 50_000_000}
    for engine in ENGINES:
        wanted = (f'attributes["{Attr.FDS_ENGINE}"] == "{engine}" and '
                  f"end_time_unix_nano - start_time_unix_nano > {budgets_ns[engine]}")
        assert wanted in conditions


def test_tail_sampling_keeps_a_probabilistic_share_of_the_rest() -> None:
    share = policies()["probabilistic"]["probabilistic"]["sampling_percentage"]
    assert 0 < share < 100


# -- environment variables ---------------------------------------------------------------------

ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")


def test_every_env_variable_is_in_the_collector_env_example() -> None:
    used = set(ENV_REF.findall(BASE.read_text() + SENTRY.read_text()))
    listed = {line.split("=", 1)[0].strip() for line in ENV_EXAMPLE.read_text().splitlines()
              if "=" in line and not line.lstrip().startswith("#")}
    assert used, "no ${env:...} found: the pattern is wrong"
    assert used <= listed, f"missing from {ENV_EXAMPLE.name}: {sorted(used - listed)}"


def strings_in(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in strings_in(key) + strings_in(value)]
    if isinstance(node, list):
        return [s for item in node for s in strings_in(item)]
    return [node] if isinstance(node, str) else []


def test_no_bare_dollar_outside_env_references() -> None:
    """A bare `$1` in a replacement would be read by the collector as a variable: a literal `$`
    (a regex anchor, a capture group reference) is written `$$`."""
    for path in (BASE, SENTRY):
        for value in strings_in(load(path)):
            assert "$" not in ENV_REF.sub("", value).replace("$$", ""), f"{path.name}: bare $ in {value!r}"


# -- PII regexes, run -------------------------------------------------------------------------

OTTL_STRING = r'"((?:\\.|[^\\"])*)"'  # the OTTL lexer's String token
HEAD = re.compile(r"(?P<func>[a-z_]+)\((?P<target>[a-z_.]+)")
STRING_ARG = re.compile(r"\s*,\s*" + OTTL_STRING)
TAIL = re.compile(r"\)(?: where (?P<where>.+))?$")


def ottl_unquote(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            assert nxt in '\\"', f"escape \\{nxt} in {body!r}: Go and Python would disagree"
            out.append(nxt)
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def parse(statement: str) -> tuple[str, str, list[str]]:
    """``func(target, "s1", "s2", ...) [where ...]``: only string literals after the target.

    An unescaped quote inside a regex ends its string early and leaves stray text, which fails
    here as it would fail in the collector.
    """
    head = HEAD.match(statement)
    assert head, statement
    pos, strings = head.end(), []
    while (arg := STRING_ARG.match(statement, pos)) is not None:
        strings.append(ottl_unquote(arg.group(1)))
        pos = arg.end()
    assert TAIL.match(statement, pos), f"unparsed {statement[pos:]!r} in {statement}"
    return head["func"], head["target"], strings


def rules_by_target() -> dict[str, list[tuple[str, str]]]:
    transform = CONFIGS["base"]["processors"]["transform/pii"]
    groups = transform["trace_statements"] + transform["log_statements"]
    by_target: dict[str, list[tuple[str, str]]] = {}
    for group in groups:
        for statement in group["statements"]:
            func, target, strings = parse(statement)
            if func == "delete_matching_keys":
                by_target.setdefault("delete:" + target, []).append((strings[0], ""))
            elif func == "replace_all_patterns":
                assert strings[0] == "value"
                by_target.setdefault(target, []).append((strings[1], strings[2]))
            else:
                assert func == "replace_pattern", func
                by_target.setdefault(target, []).append((strings[0], strings[1]))
    return by_target


def compiled(regex: str) -> re.Pattern[str]:
    # RE2 has no lookaround and no backreferences; Python has both: keep to the common subset.
    assert not re.search(r"\(\?[=!<]|\\[1-9]", regex), regex
    return re.compile(regex.replace("$$", "$"), re.ASCII)  # the config file writes a literal $ as $$


def expand(replacement: str, match: re.Match[str]) -> str:
    """Go's ``Regexp.ReplaceAllString`` after the collector's config unescaping: ``$$`` is a ``$``
    in the config file, and ``${1}`` / ``$1`` then name a capture group."""
    template = replacement.replace("$$", "$")
    return re.sub(r"\$\{?(\d+)\}?", lambda g: match.group(int(g.group(1))) or "", template)


def scrub(text: str, rules: list[tuple[str, str]]) -> str:
    for regex, replacement in rules:
        text = compiled(regex).sub(lambda m, r=replacement: expand(r, m), text)
    return text


TARGETS = ("span.attributes", "span.status.message", "spanevent.attributes", "log.attributes", "log.body")


def test_every_target_gets_the_same_rules_in_the_same_order() -> None:
    found = rules_by_target()
    assert set(TARGETS) <= set(found)
    first = found[TARGETS[0]]
    assert len(first) == 6  # the card rule runs twice (see the config)
    for target in TARGETS:
        assert found[target] == first, target
    deletes = {k: v for k, v in found.items() if k.startswith("delete:")}
    assert set(deletes) == {"delete:span.attributes", "delete:spanevent.attributes", "delete:log.attributes"}
    assert len({tuple(v) for v in deletes.values()}) == 1


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("secret", "sample"), [
    ("4111 1111 1111 1111", "payment declined for card 4111 1111 1111 1111"),
    ("4111111111111111", "card_number=4111111111111111 rejected"),
    ("5500-0000-0000-0004", "pan 5500-0000-0000-0004"),
    ("378282246310005", "amex 378282246310005 ok"),
    ("123", "cvv: 123"),
    ("987", '{"cvv": "987", "order_id": "ord-1"}'),
    ("4321", "CVC2=4321&x=1"),
    ("hunter22", "password=hunter22"),
    ("kim.minsu@example.co.kr", "user kim.minsu@example.co.kr not found"),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"),
    ("abc.def-123", "Authorization: Bearer abc.def-123"),
])
def test_pii_is_masked(target: str, secret: str, sample: str) -> None:
    masked = scrub(sample, rules_by_target()[target])
    assert secret not in masked, masked
    assert "[REDACTED" in masked, masked


@pytest.mark.parametrize("text", [
    "550e8400-e29b-41d4-a716-446655440000",          # order ids are UUIDs
    "order 3f2b8c1e-9d4a-4e2b-8f6a-1c2d3e4f5a6b shipped",
    "411111******1111",                               # already masked by the SDK (BIN + last 4)
    "amount 50000 KRW",
    "created_at 1732612345678",                       # epoch milliseconds
    "POST /v1/orders/{order_id}/verify",
    "trace a091936524f395c141fa75b72655a0af",
])
def test_ids_and_masked_values_are_kept(text: str) -> None:
    assert scrub(text, rules_by_target()["span.attributes"]) == text


def test_random_order_ids_are_never_masked() -> None:
    rules = rules_by_target()["span.attributes"]
    for _ in range(2000):
        order_id = str(uuid.uuid4())
        assert scrub(order_id, rules) == order_id


def test_exception_message_event_is_fully_scrubbed() -> None:
    message = ("PaymentDeclined: card 4111-1111-1111-1111 cvv=123 for kim@example.com "
               "(Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln) "
               "order 550e8400-e29b-41d4-a716-446655440000")
    masked = scrub(message, rules_by_target()["spanevent.attributes"])
    assert not re.search(r"\d{4}-\d{4}|cvv=123|@example|eyJ", masked), masked
    assert "550e8400-e29b-41d4-a716-446655440000" in masked


@pytest.mark.parametrize(("key", "deleted"), [
    ("password", True), ("http.request.header.authorization", True), ("x-api-key", True),
    ("payment.cvv", True), ("session.token", True), ("http.request.header.cookie", True),
    (Attr.FDS_TRANSACTION_ID, False), (Attr.FDS_DECISION, False), ("order_id", False),
    ("card_last4", False),
])
def test_secret_named_attributes_are_dropped(key: str, deleted: bool) -> None:
    regex = rules_by_target()["delete:span.attributes"][0][0]
    assert bool(compiled(regex).fullmatch(key)) is deleted


def test_adjacent_cards_and_cards_at_the_edges_are_all_masked() -> None:
    rules = rules_by_target()["log.body"]
    text = "4111111111111111 5500-0000-0000-0004,4012888888881881"
    assert scrub(text, rules) == "[REDACTED_CARD] [REDACTED_CARD],[REDACTED_CARD]"
    assert scrub("id 66720527-7091-4123-8870-bd79168b0a1c ok", rules) == "id 66720527-7091-4123-8870-bd79168b0a1c ok"
