import logging

import pytest
from opentelemetry.sdk.trace.sampling import Decision

from otel_setup.catalog import engine_span
from otel_setup.sampling import RecordingSampler, base_sampler
from otel_setup.settings import TelemetrySettings, load_settings

from ..readme import environment_names, variable_rows


def test_defaults_are_the_embedded_development_setup():
    s = load_settings()
    assert s.environment == "development"
    assert not s.otlp_enabled and s.sentry_dsn is None
    assert s.metrics_path == "/metrics" and s.trace_store_dir


def test_environment_overrides_default_and_explicit_overrides_environment(monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "staging")
    monkeypatch.setenv("APP_VERSION", "2.3.4")
    monkeypatch.setenv("SHOPFDS_METRIC_CARDINALITY_LIMIT", "77")
    s = load_settings()
    assert (s.environment, s.service_version, s.metric_cardinality_limit) == ("staging", "2.3.4", 77)
    explicit = load_settings(environment="production")
    assert explicit.environment == "production" and explicit.service_version == "2.3.4"


def test_sentry_names_are_aliases(monkeypatch):
    monkeypatch.setenv("SENTRY_ENVIRONMENT", "production")
    monkeypatch.setenv("SENTRY_RELEASE", "9.9.9")
    s = load_settings()
    assert s.environment == "production" and s.service_version == "9.9.9"


def test_bad_values_warn_and_fall_back_field_by_field(monkeypatch, caplog):
    monkeypatch.setenv("ENVIRONMENT", "prod")  # not a known environment
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    monkeypatch.setenv("OTEL_METRICS_EXEMPLAR_FILTER", "sometimes")
    monkeypatch.setenv("APP_VERSION", "1.2.3")
    with caplog.at_level(logging.WARNING, logger="otel_setup"):
        s = load_settings()
    assert s.environment == "development"
    assert s.otlp_protocol == "http/protobuf" and s.exemplar_filter == "trace_based"
    assert s.service_version == "1.2.3"  # the good variable survives
    invalid = [r.getMessage() for r in caplog.records if r.getMessage().startswith("invalid telemetry settings")]
    assert len(invalid) == 1 and "['environment']" in invalid[0]


def _sample(sampler, name="GET /x", attributes=None):
    return sampler.should_sample(None, 0x1234 << 64, name, attributes=attributes).decision


def test_development_samples_everything_production_a_tenth():
    dev = base_sampler(TelemetrySettings())
    assert _sample(dev) is Decision.RECORD_AND_SAMPLE
    prod = base_sampler(TelemetrySettings(environment="production"))
    assert "0.1" in prod.get_description()
    decisions = [prod.should_sample(None, tid * 0x9E3779B97F4A7C15 % (1 << 128), "x").decision
                 for tid in range(1, 2001)]
    share = decisions.count(Decision.RECORD_AND_SAMPLE) / len(decisions)
    assert 0.05 < share < 0.15


def test_otel_traces_sampler_overrides_environment_default(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    s = load_settings(environment="development")
    assert _sample(base_sampler(s)) is Decision.DROP


@pytest.mark.parametrize("name,arg", [("no_such_sampler", None), ("traceidratio", "abc")])
def test_bad_sampler_settings_fall_back(name, arg):
    s = TelemetrySettings(traces_sampler=name, traces_sampler_arg=arg)
    assert _sample(base_sampler(s)) is Decision.RECORD_AND_SAMPLE


def test_dropped_engine_spans_are_recorded_not_sampled():
    name, attributes = engine_span("ml")
    sampler = RecordingSampler(base_sampler(TelemetrySettings(traces_sampler="always_off")), frozenset(attributes))
    assert _sample(sampler, name, attributes) is Decision.RECORD_ONLY
    assert _sample(sampler, "POST /v1/fds/evaluate") is Decision.DROP


# Documented in the README's telemetry table and read by the OpenTelemetry SDK itself: no setting of ours.
READ_BY_THE_SDK = {"OTEL_RESOURCE_ATTRIBUTES"}


def test_the_readme_documents_exactly_the_telemetry_variables():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = variable_rows(readme.split("### Telemetry", 1)[1].split("\n### ", 1)[0])
    documented = {name for names, _ in rows for name in names}
    declared = {name for names in environment_names(TelemetrySettings).values() for name in names}
    assert (sorted(declared - documented), sorted(documented - declared)) == ([], sorted(READ_BY_THE_SDK))


def test_a_field_name_is_not_read_as_a_variable(monkeypatch):
    monkeypatch.setenv("OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("SERVICE_VERSION", "9.9.9")
    s = load_settings()
    assert (s.otlp_endpoint, s.service_version == "9.9.9") == (None, False)


@pytest.mark.parametrize("field,bad,variable,expected", [
    ("traces_sampler", "sometimes-{n}", "OTEL_TRACES_SAMPLER", None),
    ("otlp_endpoint", "collector-{n}:4318", "OTEL_EXPORTER_OTLP_ENDPOINT", None),  # no scheme
    ("otlp_traces_endpoint", "http://collector:43{n}x/v1/traces", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None),
    ("otlp_headers", "authorization Bearer tok{n},x-tenant=shop", "OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=shop"),
    ("sentry_dsn", "https://sentry.example.com/{n}", "SENTRY_DSN", None),  # no public key
])
def test_a_bad_telemetry_value_warns_once_without_echoing_it_and_falls_back(
        monkeypatch, caplog, field, bad, variable, expected):
    import uuid

    value = bad.format(n=uuid.uuid4().hex[:6])  # warnings are once per value and process
    monkeypatch.setenv(variable, value)
    with caplog.at_level(logging.WARNING, logger="otel_setup"):
        first, second = load_settings(), load_settings()
    assert getattr(first, field) == getattr(second, field) == expected
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and variable in warnings[0], warnings
    if field in ("otlp_headers", "sentry_dsn"):  # may hold a key
        assert value not in warnings[0] and "tok" not in warnings[0]


def test_only_a_usable_endpoint_enables_otlp(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")
    assert not load_settings().otlp_enabled
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert load_settings().otlp_enabled
