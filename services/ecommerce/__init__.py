"""ShopFDS ecommerce backend (:8000): shoppers, catalog, cart, orders and payments; every
checkout is evaluated by the FDS before any money moves.

Run: ``uvicorn services.ecommerce.main:app --port 8000``. API: docs/services.md "ecommerce".

Flow of ``POST /v1/orders`` (``checkout.py``): the cart becomes a ``pending`` order (stock
taken; an ``Idempotency-Key`` makes retries return the same order, 200) -> FDS
``POST /v1/fds/evaluate`` -> approve: simulated payment -> ``processing``; additional_auth:
``next_action=verify`` (``POST .../verify {code}``); hold: ``next_action=review``
(``POST .../review`` by admin/service); block: ``cancelled`` with ``fraud_blocked:<factors>``.
If the FDS times out or errors, ``SHOPFDS_FDS_FAIL_POLICY`` decides. Of a card only BIN and
last 4 are stored.

Settings (env, prefix ``SHOPFDS_``; shared ones in ``services.common.settings``):

- ``SHOPFDS_FDS_URL`` (http://127.0.0.1:8001), ``SHOPFDS_FDS_TIMEOUT`` (0.5 s)
- ``SHOPFDS_FDS_FAIL_POLICY``: hold | block | approve (hold)
- ``SHOPFDS_PAYMENT_FAILURE_RATE`` (0.0), ``SHOPFDS_PAYMENT_LATENCY_MS`` (0)
- ``SHOPFDS_VERIFY_CODE``: the code additional authentication accepts (000000, a demo OTP)
- ``SHOPFDS_PRODUCT_CACHE_TTL`` (60 s): products and listings in the cache
- ``SHOPFDS_ACTIVE_USER_WINDOW_SECONDS`` (900), ``SHOPFDS_ACTIVE_USER_REFRESH_SECONDS`` (5)
- ``SHOPFDS_SEED_CATALOG`` (true): insert the 54-product demo catalog when empty

Metrics: the ECOMMERCE group of ``otel_setup.catalog`` (``metrics.py`` records them).
"""
