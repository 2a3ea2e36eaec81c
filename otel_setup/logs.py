"""Structured logs correlated with traces, scrubbed, on stdout, in a local file and over OTLP.

``configure()`` installs this on the root logger (``SHOPFDS_LOG_FORMAT``):

- ``json`` (and ``auto`` when stdout is not a terminal or outside development): one JSON object a
  line on stdout with ``ts``, ``level``, ``logger``, ``message``, ``service.name``, ``trace_id``,
  ``span_id`` and any ``extra`` fields;
- ``console`` (``auto`` in development on a terminal): a readable line with the trace id;
- ``off``: nothing is installed.

Every line also goes, as JSON, to ``<log dir>/<service>.jsonl`` (``SHOPFDS_LOG_DIR``, by default
beside the trace store), which ``shopfds trace`` reads to show the log lines of a trace. With an
OTLP endpoint, records are exported over OTLP too (logs signal) — except the telemetry stack's
own loggers, so that a failing export cannot log, export, fail and log again.

Messages, ``extra`` fields and exception text are scrubbed with the same rules as spans and
Sentry events (``scrub``) before any handler formats them. uvicorn's loggers are routed here too.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource

from .guard import guard
from .scrub import is_sensitive_key, scrub_text, scrub_value
from .settings import TelemetrySettings

_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# Loggers whose records must not be exported over OTLP: the exporters' own, and ours.
_NOT_EXPORTED = ("opentelemetry", "otel_setup", "sentry_sdk", "urllib3", "httpx", "httpcore")
# urllib3 warns at each retry of a failed connection: with Sentry down that is three lines per
# event, written on the sender thread while requests wait for the GIL. The loss itself is counted
# (otel_setup_sentry_events_dropped_total) and a failed OTLP export is logged by its exporter.
# The SDK's batch processors warn "Queue full, dropping span" for each span while an exporter
# waits on a dead collector: a log record built per span at saturation (its duplicate filter
# lets one through every 20 s, to every handler). The drop is counted
# (otel_setup_spans_dropped_total{reason="queue_full"}); errors of that module still log.
_QUIET = {"httpx": logging.WARNING, "httpcore": logging.WARNING, "urllib3.connectionpool": logging.ERROR,
          "opentelemetry.sdk._shared_internal": logging.ERROR}


class _NoHeaderEcho(logging.Filter):
    """The OTLP exporters re-read ``OTEL_EXPORTER_OTLP_*HEADERS`` themselves and log a malformed
    entry verbatim, often a token. The settings already reported it, once and without the value."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Header format invalid")


def mute_header_echo() -> None:
    logger = logging.getLogger("opentelemetry.util.re")
    if not any(isinstance(f, _NoHeaderEcho) for f in logger.filters):
        logger.addFilter(_NoHeaderEcho())


class ScrubFilter(logging.Filter):
    """Masks card numbers, e-mails, tokens in the message, the extras and the exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_shopfds_scrubbed", False):
            return True
        with guard("log-scrub"):
            record.msg = scrub_text(record.getMessage())
            record.args = None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = scrub_text(record.exc_text)
            if record.exc_info and record.exc_info[1] is not None:
                # The OTLP handler would read the raw exception message from exc_info: hand it
                # the scrubbed text as attributes instead.
                exc = record.exc_info[1]
                record.__dict__["exception.type"] = type(exc).__name__
                record.__dict__["exception.message"] = scrub_text(str(exc))
                record.__dict__["exception.stacktrace"] = record.exc_text
                record.exc_info = None
            for key in [k for k in record.__dict__ if k not in _RESERVED and not k.startswith("exception.")]:
                value = record.__dict__[key]
                record.__dict__[key] = "[Filtered]" if is_sensitive_key(key) else scrub_value(value)
            record._shopfds_scrubbed = True
        return True


def _trace_ids() -> tuple[str | None, str | None]:
    ctx = trace_api.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return trace_api.format_trace_id(ctx.trace_id), trace_api.format_span_id(ctx.span_id)


class JsonFormatter(logging.Formatter):
    def __init__(self, service_name: str) -> None:
        super().__init__()
        self.service_name = service_name

    def format(self, record: logging.LogRecord) -> str:
        trace_id, span_id = _trace_ids()
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
            "service.name": self.service_name, "trace_id": trace_id, "span_id": span_id,
        }
        if record.exc_text:
            line["exception"] = record.exc_text
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith(("_", "exception.")):
                line[key] = value
        return json.dumps(line, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(trace)s%(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        trace_id, _ = _trace_ids()
        record.__dict__["trace"] = f"[{trace_id[:8]}] " if trace_id else ""
        text = super().format(record)
        del record.__dict__["trace"]
        return text


class _NotTelemetry(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(_NOT_EXPORTED)


class LogSetup:
    """The handlers installed on the root logger for one service, and the OTLP log provider
    behind one of them; ``detach`` takes them off again."""

    def __init__(self, handlers: list[logging.Handler], provider: LoggerProvider | None) -> None:
        self.handlers = handlers
        self.provider = provider

    def flush(self, timeout_millis: int = 5000) -> None:
        if self.provider is not None:
            with guard("log-flush"):
                self.provider.force_flush(timeout_millis)

    def detach(self) -> LoggerProvider | None:
        """Remove and close the handlers; returns the OTLP log provider, still to be shut down
        (its last export may wait on a dead collector: the caller bounds it), or None."""
        root = logging.getLogger()
        for handler in self.handlers:
            root.removeHandler(handler)
            with guard("log-close"):
                handler.close()
        self.handlers = []
        provider, self.provider = self.provider, None
        return provider


def init_logging(settings: TelemetrySettings, service_name: str, file_stem: str, resource: Resource,
                 otlp: bool) -> LogSetup:
    """Install the handlers of one service on the root logger (``otlp``: also export over OTLP)."""
    setup = LogSetup([], None)
    s = settings
    if s.log_format == "off":
        return setup
    root = logging.getLogger()
    root.setLevel(s.log_level)
    for name, level in _QUIET.items():
        logging.getLogger(name).setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
    scrub = ScrubFilter()
    console = s.log_format == "console" or (
        s.log_format == "auto" and s.environment == "development" and sys.stdout.isatty())
    stdout = logging.StreamHandler(sys.stdout)
    stdout.setFormatter(ConsoleFormatter() if console else JsonFormatter(service_name))
    setup.handlers.append(stdout)
    with guard("log-file"):
        directory = Path(s.log_directory)
        directory.mkdir(parents=True, exist_ok=True)
        file = RotatingFileHandler(directory / f"{file_stem}.jsonl", maxBytes=16 * 1024 * 1024,
                                   backupCount=1, encoding="utf-8")
        file.setFormatter(JsonFormatter(service_name))
        setup.handlers.append(file)
    if otlp and s.otlp_endpoint:  # logs go to the general endpoint only (otlp.log_exporter)
        with guard("otlp-logs"):
            setup.provider, handler = _otlp_handler(settings, resource)
            setup.handlers.append(handler)
    for handler in setup.handlers:
        handler.addFilter(scrub)
        root.addHandler(handler)
    return setup


def _otlp_handler(settings: TelemetrySettings, resource: Resource) -> tuple[LoggerProvider, logging.Handler]:
    from opentelemetry.sdk._logs import LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    from .otlp import log_exporter

    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter(settings)))
    handler = LoggingHandler(logger_provider=provider)
    handler.addFilter(_NotTelemetry())
    return provider, handler
