"""Which semantic conventions the contrib instrumentations write: the stable HTTP and database
names by default.

Without ``OTEL_SEMCONV_STABILITY_OPT_IN`` the contrib packages (opentelemetry-instrumentation
0.66b2, ``opentelemetry/instrumentation/_semconv.py``) write the pre-1.0 names:
``http.status_code``, ``http.method``, ``http.target``, ``db.statement``, ``net.peer.*``. The
collector's span metrics (``http.response.status_code``), Tempo, Grafana and Sentry read the
stable ones (``http.request.method``, ``http.response.status_code``, ``url.path``,
``db.query.text``, ``db.system.name``, ``server.address``), so ``configure`` opts in before it
creates any instrumentation; a value the deployment sets (``http/dup``, or empty for the old
names) is used as it is.

The contrib packages read the variable once per process and cache the answer; each
instrumentation reads the cache when it is created (the server middleware when the app's
middleware stack is built, a SQLAlchemy engine or an httpx client when instrumented). So the
cache is re-read here, before any of them exists.
"""

from __future__ import annotations

import os

from .guard import guard

VARIABLE = "OTEL_SEMCONV_STABILITY_OPT_IN"


def apply(opt_in: str) -> None:
    """Make ``opt_in`` the mode every instrumentation created from now on uses."""
    os.environ[VARIABLE] = opt_in
    with guard("semconv"):
        from opentelemetry.instrumentation._semconv import _OpenTelemetrySemanticConventionStability as stability

        with stability._lock:
            stability._initialized = False
        stability._initialize()
