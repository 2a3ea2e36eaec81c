"""The admin dashboard backend (:8003): review of held transactions, fraud labels, stats.

    uvicorn services.admin.main:app --port 8003

Routes (docs/services.md "admin"):

- ``POST /v1/admin/auth/login`` ``{username, password}`` -> a JWT with role ``admin``. Failed
  attempts are limited per account and per client IP (``login_attempts_per_minute``, default 5):
  past the limit every attempt, right or wrong, gets 429 with ``Retry-After`` until the minute ends.
- ``GET /v1/admin/reviews`` -> the FDS review queue (held, unlabeled, oldest first).
- ``POST /v1/admin/reviews/{transaction_id}/resolve`` ``{decision: approve|block, is_fraud}``:
  the held order is approved (paid) or cancelled in ecommerce, then the label goes to the FDS
  feedback route. The resolution is claimed in the table ``admin_resolutions`` first, so a retry
  after a partial failure (timeout, upstream down -> 502) completes the remaining steps, and a
  retry after success returns the same answer. A different decision for an already claimed
  transaction is 409.
- ``GET /v1/admin/stats`` -> FDS stats + ``review_queue``.

Settings (env prefix ``SHOPFDS_``, plus everything in ``services.common.settings``):

- ``SHOPFDS_ADMIN_USERNAME`` (``admin``), ``SHOPFDS_ADMIN_PASSWORD`` (``admin``; the default refuses to
  start in production; argon2-hashed at start, never kept in clear beyond the settings object);
- ``SHOPFDS_LOGIN_ATTEMPTS_PER_MINUTE`` (5);
- ``SHOPFDS_ADMIN_UPSTREAM_TIMEOUT`` (5.0 s) for calls to the FDS (``SHOPFDS_FDS_URL``) and ecommerce
  (``SHOPFDS_ECOMMERCE_URL``), which carry a short-lived ``service`` token.

Metrics: ``admin_logins_total{result=success|failed|rate_limited}``, ``admin_review_queue_size``,
``admin_reviews_resolved_total{decision,is_fraud}``, ``admin_review_age_seconds`` (hold -> resolution).
"""
