"""The FDS HTTP API: ``/v1/fds/...`` (docs/services.md "fds").

Each resource router carries its full prefix and is included in the app directly: FastAPI
(0.16x) keeps nested routers, and the route a request matches then knows only its innermost
prefix, which would make the ``endpoint`` label of the HTTP metrics lose ``/v1/fds``.
"""

from .routes import evaluate, reviews, stats, transactions

ROUTERS = (evaluate.router, transactions.router, reviews.router, stats.router)
