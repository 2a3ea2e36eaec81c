"""ShopFDS fraud detection service (:8001): transaction in, risk score and decision out.

    uvicorn services.fds.main:app --port 8001

``POST /v1/fds/evaluate`` runs, for one transaction (docs/services.md "fds" has the API):

1. the aggregates step (``context.py``): velocity per user / card / IP / device, the user's
   amount history and known devices, from the cache (Redis or in-process), concurrently;
2. three engines concurrently (``engines/``), each in a span ``fds.engine.<name>`` and under
   its own budget: **rule** (``rules.yaml``, see ``rulebook.py``), **ml** (the model deployed
   by the ML service, scored in-process), **cti** (``feeds/*.txt`` plus an optional external
   IP reputation provider, cached and behind a circuit breaker);
3. the aggregator (``aggregator.py``): weighted noisy-OR score 0-100 -> risk level
   low|medium|high|blocked -> decision approve|additional_auth|hold|block; hard blocklist
   hits block.

The evaluation is stored (``fds_evaluations``); a retry with the same ``transaction_id`` gets
the stored answer and is not counted again. Reviewers label transactions (feedback), which
drives the TP/FP/TN/FN counters and the precision/recall/F1 gauges.

Degraded policy: an engine that times out, fails or is unavailable is reported with that
status, the evaluation says ``degraded: true`` with ``degraded_reason`` (e.g.
``ml_unavailable, cti_timeout``) and failures go to Sentry. Then:

- ML missing (no model deployed yet, timeout, error): rules + CTI decide alone;
- CTI missing, or only its external provider (timeout, error, circuit open): rules + ML
  (+ the feeds) decide;
- rule engine missing: never approve: ``hold`` when the amount is at least
  ``SHOPFDS_RULE_FALLBACK_HOLD_AMOUNT_KRW`` (1,000,000), else ``additional_auth``, or the
  stricter decision of the other engines;
- aggregates missing (cache too slow): engines see the transaction without history;
- Redis down (``aggregates_fallback``): velocity and history come from this process's own store.

Every reason is counted in ``fds_degraded_evaluations_total{reason}`` (the *FDS Degraded
Decisions* alert).

Settings (environment, prefix ``SHOPFDS_``; ``settings.py`` has every field): engine budgets
``RULE_TIMEOUT_SECONDS`` 0.03, ``ML_TIMEOUT_SECONDS`` 0.04, ``CTI_TIMEOUT_SECONDS`` 0.05,
``AGGREGATES_TIMEOUT_SECONDS`` 0.03, ``SLA_SECONDS`` 0.1; weights ``RULE_WEIGHT`` 1.0,
``ML_WEIGHT`` 0.6, ``CTI_WEIGHT`` 1.0; thresholds ``MEDIUM_THRESHOLD`` 30, ``HIGH_THRESHOLD`` 60,
``BLOCKED_THRESHOLD`` 85; ``RULES_PATH``; ``ML_URL``, ``ML_REFRESH_SECONDS`` 30;
``CTI_FEEDS_DIR``, ``CTI_PROVIDER_URL`` (unset: feeds only), ``CTI_PROVIDER_TIMEOUT_SECONDS``
0.03, ``CTI_PROVIDER_THRESHOLD`` 50, ``CTI_CACHE_TTL_SECONDS`` 3600, ``CTI_BREAKER_FAILURES``
5, ``CTI_BREAKER_RESET_SECONDS`` 30; ``LATENCY_WINDOW`` 1000; plus the shared ones
(``DATABASE_URL``, ``REDIS_URL``, ``SHOPFDS_JWT_SECRET``, ...).

Metrics: every ``fds_*`` name of ``otel_setup/catalog.py``; the per-engine durations come
from the engine spans. The server span carries ``fds.transaction_id``, ``fds.risk_score``,
``fds.risk_level``, ``fds.decision`` and ``fds.degraded``.
"""
