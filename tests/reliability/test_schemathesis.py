"""Each service against its own OpenAPI schema, fuzzed by schemathesis in-process (embedded back end).

Every operation of a service goes through schemathesis's example, coverage (boundary and
missing/invalid values, other methods) and fuzzing phases, with a fixed seed and derandomized
generation so a run is repeatable. Each response must:

- not be a 5xx (``not_a_server_error``);
- carry a documented status code, content type and headers, and a body that fits the documented
  schema (``status_code_conformance``, ``content_type_conformance``, ``response_headers_conformance``,
  ``response_schema_conformance``): the error answers (401, 403, 404, 409, 413, 422, 503) are
  declared on the routes, so the schema is honest about them.

Requests carry the token of the role an operation is for (a registered shopper on the shop's cart
and order routes, who has a product in the cart before each checkout; staff elsewhere), so the
authenticated code paths run, not only the 401s (the coverage phase still sends some requests
without a token). The services are wired for real: admin -> ecommerce and FDS, ecommerce -> FDS,
FDS -> ML, each reached through the other app's ASGI transport.

The operations' tests are built with ``schemathesis.pytest.lazy.get_all_tests`` and run inside one
pytest test per service: ``schemathesis.pytest.from_fixture`` would do the same but renames the
pytest node through ``request.node._nodeid``, which pytest 9.2 no longer has.

Not checked: ``negative_data_rejection``. Pydantic's lax mode converts some values the schema
calls another type (``false`` for a float feature, ``"7"`` for an integer) by design; the 422s
for malformed input are pinned by the service tests and ``test_bad_input.py``.
Excluded: ``PUT /internal/faults/{name}``: switching a fault on turns the service under test into
a deliberately failing one (payment errors are 502s, a slow database adds up to 10 s a request);
its validation is covered in tests/services/test_faults.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.core.result import Ok
from schemathesis.pytest.lazy import get_all_tests
from schemathesis.python import asgi

from otel_setup.settings import TelemetrySettings
from services.admin.app import create_app as create_admin
from services.admin.settings import Settings as AdminSettings
from services.common.security import issue_token
from services.ecommerce.app import create_app as create_ecommerce
from services.ecommerce.settings import Settings as EcommerceSettings
from services.fds.app import create_app as create_fds
from services.fds.settings import Settings as FdsSettings
from services.ml.app import create_app as create_ml
from services.ml.settings import Settings as MlSettings

# schemathesis's own strategies draw from ``random``; Hypothesis warns about it on every run.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance", "response_headers_conformance",
          "response_schema_conformance", "missing_required_header", "unsupported_method")
EXCLUDED = {"PUT /internal/faults/{name}"}
CONFIG = {
    "seed": 20261126,
    # Fuzzing examples per operation; the coverage phase adds its boundary cases on top.
    "generation": {"max-examples": 25, "deterministic": True, "database": "none"},
    "phases": {"stateful": {"enabled": False}},
    "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
}
TRAINING_SAMPLES = 1_000
# The shop's routes for staff; its other authenticated routes are a shopper's.
STAFF_ROUTES = ("/v1/orders/{order_id}/review", "/v1/orders/{order_id}/status", "/internal/faults",
                "/internal/faults/{name}")


def _telemetry(tmp_path: Path, name: str) -> TelemetrySettings:
    return TelemetrySettings(trace_store_dir=str(tmp_path / f"{name}-traces"))


def _apps(tmp_path: Path, upto: str) -> list[FastAPI]:
    """The apps ``upto`` needs, callees first (the lifespans must start in this order)."""
    data = {"data_dir": str(tmp_path / "data")}
    ml = create_ml(MlSettings(**data, default_samples=1_000), telemetry_settings=_telemetry(tmp_path, "ml"))
    if upto == "ml":
        return [ml]
    fds = create_fds(FdsSettings(**data, ml_url="http://ml"), telemetry_settings=_telemetry(tmp_path, "fds"),
                     ml_transport=httpx.ASGITransport(app=ml))
    if upto == "fds":
        return [ml, fds]
    shop = create_ecommerce(EcommerceSettings(**data, fds_url="http://fds", fds_timeout=5.0),
                            telemetry_settings=_telemetry(tmp_path, "ecommerce"),
                            fds_transport=httpx.ASGITransport(app=fds))
    if upto == "ecommerce":
        return [ml, fds, shop]
    admin = create_admin(AdminSettings(**data, fds_url="http://fds", ecommerce_url="http://ecommerce"),
                         telemetry_settings=_telemetry(tmp_path, "admin"), fds_transport=httpx.ASGITransport(app=fds),
                         ecommerce_transport=httpx.ASGITransport(app=shop))
    return [ml, fds, shop, admin]


@contextmanager
def _schema(tmp_path: Path, service: str) -> Iterator[Any]:
    """The service's schema, loaded from its running app (and the apps it calls, started first)."""
    config = schemathesis.Config.from_dict(CONFIG)
    try:
        schema = None
        for app in _apps(tmp_path, service):
            schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
        yield schema
    finally:
        asgi.shutdown_lifespans()


def _bearer(app: FastAPI, subject: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(app.state.settings.jwt_secret, subject, role, 600)}"}


def _shopper(schema: Any) -> dict[str, str]:
    """A registered, signed-in shopper; the Authorization header."""
    credentials = {"email": f"{uuid.uuid4().hex[:10]}@example.com", "password": "s3cret-pass"}
    created = schema["/v1/auth/register"]["POST"].Case(body={**credentials, "name": "Kim"}).call()
    assert created.status_code == 201, created.text
    login = schema["/v1/auth/login"]["POST"].Case(body=credentials).call()
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _fill_cart(schema: Any, headers: dict[str, str]) -> None:
    added = schema["/v1/cart/items"]["POST"].Case(body={"product_id": 1, "quantity": 1}).call(headers=headers)
    assert added.status_code in (201, 409), added.text  # 409: the cart holds 99 already


def _auth(service: str, schema: Any) -> Callable[[Any], dict[str, str]]:
    """The headers for a case; a shop checkout finds something in the cart to order."""
    staff = _bearer(schema.app, "schemathesis", "admin")
    if service != "ecommerce":
        return lambda _case: staff
    shopper = _shopper(schema)

    def headers(case: Any) -> dict[str, str]:
        if case.operation.path in STAFF_ROUTES:
            return staff
        if case.operation.label == "POST /v1/orders":
            _fill_cart(schema, shopper)
        return shopper

    return headers


def _cheap_training(case: Any) -> None:
    """Training takes most of a second per 20,000 samples (the default): a valid or absent
    ``samples`` is cut to the minimum; its bounds are the service tests' business, and the other
    fields stay as generated."""
    body = case.body
    if case.operation.label != "POST /v1/ml/train" or not isinstance(body, dict):
        return
    samples = body.get("samples", TRAINING_SAMPLES)
    if type(samples) is int and TRAINING_SAMPLES <= samples <= 200_000:
        body["samples"] = TRAINING_SAMPLES


def _run(schema: Any, headers_for: Callable[[Any], dict[str, str]]) -> tuple[dict[str, int], list[str]]:
    """Calls per operation and the failures, one text per failing operation."""
    calls: dict[str, int] = {}
    failures: list[str] = []

    def check(case: Any) -> None:
        label = case.operation.label
        calls[label] = calls.get(label, 0) + 1
        _cheap_training(case)
        case.call_and_validate(headers=headers_for(case))

    for result in get_all_tests(schema=schema, test_func=check, settings=None, given_kwargs=None):
        if not isinstance(result, Ok):
            failures.append(f"schema error: {result.err()}")
            continue
        operation, test = result.ok()
        if operation.label in EXCLUDED:
            continue
        try:
            test()
        except (Exception, BaseExceptionGroup) as exc:  # a check failure, or the app raised
            failures.append(f"{operation.label}: {exc}")
    return calls, failures


@pytest.mark.parametrize("service", ["ml", "fds", "ecommerce", "admin"])
def test_every_operation_answers_as_its_schema_says(tmp_path: Path, service: str) -> None:
    with _schema(tmp_path, service) as schema:
        calls, failures = _run(schema, _auth(service, schema))
    assert not failures, "\n\n".join(failures)
    # Every operation of the schema (less the excluded) was called, most of them many times.
    operations = {r.ok().label for r in schema.get_all_operations() if isinstance(r, Ok)} - EXCLUDED
    assert set(calls) == operations
    assert sum(calls.values()) >= 10 * len(operations), calls
