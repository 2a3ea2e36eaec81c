"""Every setting of the telemetry layer, with its environment variable and default.

Precedence is the same everywhere: an explicit ``TelemetrySettings(...)`` argument, then the
environment, then the default. Standard variables keep their standard names
(``OTEL_*``, ``SENTRY_*``); the project's own carry the ``SHOPFDS_`` prefix.

The table of every variable and its default is in README.md, section "Configuration"
(``tests/otel_setup/test_settings.py`` keeps the two in step).
"""

from __future__ import annotations

import logging
import os
from importlib import metadata
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .guard import warn_once

_log = logging.getLogger("otel_setup")

Environment = Literal["development", "staging", "production"]
_PROTOCOLS = ("http/protobuf", "grpc")
SAMPLERS = ("always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off",
            "parentbased_traceidratio")


def valid_url(url: str) -> bool:
    """An ``http(s)://host[:port]...`` URL, the only form the OTLP exporters take."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _warn_once(field: str, value: str, message: str, *args: object) -> None:
    # load_settings may build the settings twice; a bad value is still reported once.
    warn_once(f"settings-{field}-{value}", message, *args)


def _env_name(field: str | None) -> str:
    alias = TelemetrySettings.model_fields[field or ""].validation_alias
    names = [n for n in getattr(alias, "choices", ()) if isinstance(n, str) and n.isupper()]
    return names[0] if names else f"SHOPFDS_{(field or '').upper()}"


def _package_version() -> str:
    try:
        return metadata.version("shopfds")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class TelemetrySettings(BaseSettings):
    """Typed view of the environment; build once, pass to ``configure``."""

    model_config = SettingsConfigDict(
        env_prefix="SHOPFDS_", extra="ignore", populate_by_name=True, frozen=True
    )

    environment: Environment = Field(
        "development", validation_alias=_alias("SENTRY_ENVIRONMENT", "ENVIRONMENT")
    )
    service_version: str = Field(
        default_factory=_package_version,
        validation_alias=_alias("APP_VERSION", "SENTRY_RELEASE"),
    )
    sdk_disabled: bool = Field(False, validation_alias=_alias("OTEL_SDK_DISABLED"))
    service_name_override: str | None = Field(
        None, validation_alias=_alias("OTEL_SERVICE_NAME")
    )
    traces_sampler: str | None = Field(
        None, validation_alias=_alias("OTEL_TRACES_SAMPLER")
    )
    traces_sampler_arg: float | None = Field(
        None, validation_alias=_alias("OTEL_TRACES_SAMPLER_ARG")
    )
    exemplar_filter: str = Field(
        "trace_based", validation_alias=_alias("OTEL_METRICS_EXEMPLAR_FILTER")
    )
    otlp_endpoint: str | None = Field(
        None, validation_alias=_alias("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    otlp_traces_endpoint: str | None = Field(
        None, validation_alias=_alias("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    otlp_metrics_endpoint: str | None = Field(
        None,
        validation_alias=_alias("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
    )
    otlp_protocol: str = Field(
        "http/protobuf", validation_alias=_alias("OTEL_EXPORTER_OTLP_PROTOCOL")
    )
    otlp_traces_protocol: str | None = Field(
        None, validation_alias=_alias("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
    )
    otlp_metrics_protocol: str | None = Field(
        None,
        validation_alias=_alias("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"),
    )
    otlp_headers: str | None = Field(
        None, validation_alias=_alias("OTEL_EXPORTER_OTLP_HEADERS")
    )
    otlp_traces_headers: str | None = Field(
        None, validation_alias=_alias("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
    )
    otlp_metrics_headers: str | None = Field(
        None, validation_alias=_alias("OTEL_EXPORTER_OTLP_METRICS_HEADERS")
    )
    otlp_timeout_s: float = Field(
        5.0, gt=0, validation_alias=_alias("OTEL_EXPORTER_OTLP_TIMEOUT")
    )
    # "none": no OTLP metric push even with an endpoint set, when Prometheus scrapes /metrics
    # (compose): one path per metric, so no sum() counts a series twice.
    metrics_exporter: Literal["otlp", "none"] = Field(
        "otlp", validation_alias=_alias("OTEL_METRICS_EXPORTER")
    )
    metric_export_interval_ms: int = Field(
        15000, gt=0, validation_alias=_alias("OTEL_METRIC_EXPORT_INTERVAL")
    )
    sentry_dsn: str | None = Field(None, validation_alias=_alias("SENTRY_DSN"))
    sentry_traces: bool = True
    # The collector forwards traces to Sentry (its Sentry overlay): the SDK then sends none itself.
    sentry_traces_via_collector: bool = False
    trace_store_dir: str = ".shopfds/traces"
    trace_store_max_mb: float = Field(64.0, gt=0)
    metrics_path: str = "/metrics"
    # /metrics access (see metrics_server): a bearer token, and/or a listener of its own instead
    # of the public app. Unset, /metrics stays an open route of the app.
    metrics_token: SecretStr | None = None
    metrics_port: int | None = Field(None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    metric_cardinality_limit: int = Field(500, ge=10)
    excluded_urls: str = "/metrics,/health"
    # 3 s: with uvicorn's own stop, a service is gone within 5 s of SIGTERM even with a dead collector.
    shutdown_timeout: float = Field(3.0, gt=0)
    log_format: Literal["auto", "json", "console", "off"] = "auto"
    log_level: str = "INFO"
    log_dir: str | None = None
    instrument_dependencies: bool = True
    # The contrib instrumentations write the pre-1.0 names (http.status_code, db.statement,
    # net.peer.*) unless told otherwise; the collector, Tempo and Sentry expect the stable ones.
    semconv_stability_opt_in: str = Field(
        "http,database",
        validation_alias=_alias("OTEL_SEMCONV_STABILITY_OPT_IN"),
    )

    @field_validator("otlp_protocol", "otlp_traces_protocol", "otlp_metrics_protocol")
    @classmethod
    def _known_protocol(cls, value: str | None) -> str | None:
        # A bad protocol must not stop the service: warn and use the default.
        if value is not None and value not in _PROTOCOLS:
            _log.warning("unsupported OTLP protocol %r, using http/protobuf", value)
            return "http/protobuf"
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            _log.warning("unknown SHOPFDS_LOG_LEVEL %r, using INFO", value)
            return "INFO"
        return value.upper()

    @field_validator("exemplar_filter")
    @classmethod
    def _known_exemplar_filter(cls, value: str) -> str:
        if value not in ("trace_based", "always_on", "always_off"):
            _log.warning("unknown OTEL_METRICS_EXEMPLAR_FILTER %r, using trace_based", value)
            return "trace_based"
        return value

    @field_validator("sentry_dsn", "otlp_endpoint", "otlp_traces_endpoint", "otlp_metrics_endpoint")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("sentry_traces_via_collector", mode="before")
    @classmethod
    def _blank_is_false(cls, value: object) -> object:
        return value if value not in ("", None) else False  # compose passes "" when it is off

    # The checks below run after the one above (pydantic: in definition order). Each bad value
    # is reported once, never echoed (a DSN or a header may hold a key), and switched off.
    @field_validator("otlp_endpoint", "otlp_traces_endpoint", "otlp_metrics_endpoint")
    @classmethod
    def _http_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not valid_url(value):
            _warn_once(info.field_name or "", value, "malformed OTLP endpoint in %s (expected "
                       "http[s]://host[:port]); OTLP export off for it", _env_name(info.field_name))
            return None
        return value

    @field_validator("otlp_headers", "otlp_traces_headers", "otlp_metrics_headers")
    @classmethod
    def _well_formed_headers(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        items = [item for item in value.split(",") if item.strip()]
        good = [item for item in items if item.partition("=")[0].strip() and "=" in item]
        if len(good) < len(items):
            _warn_once(info.field_name or "", value, "%s: ignoring malformed entries (%d; expected k=v,k2=v2)",
                       _env_name(info.field_name), len(items) - len(good))
        return ",".join(good) or None

    @field_validator("traces_sampler")
    @classmethod
    def _known_sampler(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        name = value.strip().lower()
        if name not in SAMPLERS:
            _warn_once("traces_sampler", value, "unknown OTEL_TRACES_SAMPLER %r, using the environment default",
                       value[:40])
            return None
        return name

    @field_validator("traces_sampler_arg", mode="before")
    @classmethod
    def _ratio(cls, value: object) -> object:
        if value is None or value == "":
            return None
        try:
            ratio = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            _warn_once("traces_sampler_arg", str(value), "invalid OTEL_TRACES_SAMPLER_ARG %r (expected 0.0-1.0), "
                       "using the sampler's default ratio", str(value)[:40])
            return None
        return ratio

    @field_validator("sentry_dsn")
    @classmethod
    def _valid_dsn(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from sentry_sdk.utils import BadDsn, Dsn

        try:
            Dsn(value)
        except BadDsn as exc:
            _warn_once("sentry_dsn", value, "invalid SENTRY_DSN (%s); Sentry off", exc)
            return None
        return value

    @property
    def otlp_enabled(self) -> bool:
        """True when any OTLP endpoint is set: a collector receives our telemetry."""
        return bool(self.otlp_endpoint or self.otlp_traces_endpoint or self.otlp_metrics_endpoint)

    @property
    def otlp_metrics_enabled(self) -> bool:
        """True when metrics are pushed over OTLP: an endpoint for them, and not switched off."""
        return bool(self.otlp_endpoint or self.otlp_metrics_endpoint) and self.metrics_exporter != "none"

    @property
    def log_directory(self) -> str:
        """Where ``<service>.jsonl`` log files go: ``log_dir``, else beside the trace store."""
        store = (self.trace_store_dir or ".shopfds/traces").rstrip("/")
        return self.log_dir or os.path.join(os.path.dirname(store) or ".shopfds", "logs")

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def excluded_paths(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.excluded_urls.split(",") if p.strip())


def load_settings(**overrides: object) -> TelemetrySettings:
    """Settings from the environment, falling back field by field on invalid values.

    A typo in one variable (``ENVIRONMENT=prod``) must not stop a service: the bad field is
    reported once and takes its default, the others keep their values.
    """
    try:
        return TelemetrySettings(**overrides)  # type: ignore[arg-type]
    except Exception as exc:  # pydantic.ValidationError; kept broad so telemetry never blocks start
        bad = {_field_of(str(err["loc"][0])) for err in getattr(exc, "errors", lambda: [])()}
        _log.warning("invalid telemetry settings %s, using defaults for them: %s", sorted(bad), exc)
        defaults = {name: TelemetrySettings.model_fields[name].get_default(call_default_factory=True)
                    for name in bad if name in TelemetrySettings.model_fields}
        if "metrics_port" in bad:
            defaults["metrics_path"] = _metrics_nowhere()
        try:
            return TelemetrySettings(**{**overrides, **defaults})  # type: ignore[arg-type]
        except Exception:
            _log.warning("telemetry settings unusable, running with all defaults")
            return TelemetrySettings.model_construct()


def _field_of(name: str) -> str:
    """The field a validation error names, by its field name or by the variable it was read from."""
    for field, info in TelemetrySettings.model_fields.items():
        if name == field or name in getattr(info.validation_alias, "choices", ()):
            return field
    return name


def _metrics_nowhere() -> str:
    """An invalid ``SHOPFDS_METRICS_PORT`` fails closed: the operator meant to move ``/metrics``
    off the public app, so its default (``/metrics`` on the app) would expose what they hid.
    ``/metrics`` is then served nowhere, and the log says so."""
    _log.error("invalid SHOPFDS_METRICS_PORT (expected a port 1-65535): /metrics is served nowhere, "
               "neither on its own port nor on the public app; fix the value to be scraped again")
    return ""
