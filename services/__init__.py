"""The four ShopFDS services observed by ``otel_setup``.

    services/common     settings, database, cache, security and the app factory they share
    services/ecommerce  :8000 users, products, cart, orders, payments (calls FDS before paying)
    services/fds        :8001 fraud detection: rule, ML and CTI engines -> risk score -> decision
    services/ml         :8002 fraud model training, versions, deployment, scoring
    services/admin      :8003 review of held transactions, fraud labels, stats

Each is served by ``uvicorn services.<name>.main:app``; ``create_app(settings)`` in
``services.<name>.app`` builds a fresh app for tests.
"""
