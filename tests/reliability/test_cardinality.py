"""A flood of random requests must not grow /metrics: every label stays bounded.

Each service (in-process, embedded back end) gets two rounds of the same mix of requests, each
with fresh random values: unknown paths (404s), random ids in path parameters, random methods,
random query strings, and random ``User-Agent``, ``X-Forwarded-For``, ``X-Device-Id`` and bearer
tokens. Then, on its /metrics:

- no random value shows up anywhere (a 404 is the ``unmatched`` route, an id is its template, an
  unknown method is ``_OTHER``);
- the second round added no series to the service's families: their count does not follow the
  traffic;
- every family stays under its series cap (``metric_cardinality_limit``) without an overflow series;
- ``promtool check metrics`` finds no problem (with the one excuse ``tests/services/test_system.py``
  makes, for the same reason).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from otel_setup.catalog import Attr
from otel_setup.settings import TelemetrySettings
from services.admin.app import create_app as create_admin
from services.admin.settings import Settings as AdminSettings
from services.common.inprocess import serve
from services.ecommerce.app import create_app as create_ecommerce
from services.ecommerce.settings import Settings as EcommerceSettings
from services.fds.app import create_app as create_fds
from services.fds.settings import Settings as FdsSettings
from services.ml.app import create_app as create_ml
from services.ml.settings import Settings as MlSettings
from tests.reliability.callers import caller_headers

DEAD = "http://127.0.0.1:1"  # nothing listens: every upstream call fails at once
ROUNDS = 2
PER_KIND = 40  # requests of each kind in a round


@dataclass
class Flood:
    """Random request values, all remembered so that /metrics can be searched for them."""

    rng: random.Random
    sent: set[str] = field(default_factory=set)

    def token(self) -> str:
        value = uuid.UUID(int=self.rng.getrandbits(128), version=4).hex
        self.sent.add(value)
        return value

    def number(self) -> str:
        # Far above any seeded id and below the 32-bit bound (that would be a 422, not a 404).
        value = str(self.rng.randrange(10**8, 2**31 - 1))
        self.sent.add(value)
        return value

    def method(self) -> str:
        return self.token()[:10].upper()

    def headers(self, auth: dict[str, str]) -> dict[str, str]:
        address = f"10.{self.rng.randrange(256)}.{self.rng.randrange(256)}.{self.rng.randrange(1, 255)}"
        self.sent.add(address)
        return {"User-Agent": f"agent/{self.token()}", "X-Forwarded-For": address,
                "X-Device-Id": f"device-{self.token()}", **auth}


Request = Callable[[Flood], tuple[str, str, dict[str, Any]]]  # method, path, httpx keyword arguments


def _common(listing: str, known: str) -> list[Request]:
    """Kinds every service gets: unknown paths, unknown methods, random queries and headers."""
    return [
        lambda f: ("GET", f"/{f.token()}/{f.number()}", {}),
        lambda f: ("POST", f"/v1/{f.token()}", {"json": {}}),
        lambda f: (f.method(), known, {}),
        lambda f: ("GET", f"{listing}?{f.token()}={f.token()}&q={f.number()}", {}),
        lambda f: ("GET", listing, {"headers": f.headers({"Authorization": f"Bearer {f.token()}"})}),
    ]


@dataclass
class Service:
    build: Callable[[Path], FastAPI]
    kinds: Callable[[dict[str, str]], list[Request]]  # given the caller's Authorization header
    role: str


def _telemetry(tmp_path: Path) -> TelemetrySettings:
    return TelemetrySettings(trace_store_dir=str(tmp_path / "traces"))


def _ecommerce(tmp_path: Path) -> FastAPI:
    return create_ecommerce(EcommerceSettings(data_dir=str(tmp_path), fds_url=DEAD),
                            telemetry_settings=_telemetry(tmp_path))


def _ecommerce_kinds(auth: dict[str, str]) -> list[Request]:
    return [*_common("/v1/products", "/v1/products/1"),
            lambda f: ("GET", f"/v1/products/{f.number()}", {"headers": f.headers({})}),
            lambda f: ("GET", f"/v1/orders/{uuid.UUID(f.token())}", {"headers": f.headers(auth)}),
            lambda f: ("DELETE", f"/v1/cart/items/{f.number()}", {"headers": f.headers(auth)}),
            lambda f: ("POST", f"/v1/orders/{f.token()}/verify", {"headers": auth, "json": {"code": "000000"}})]


def _fds(tmp_path: Path) -> FastAPI:
    return create_fds(FdsSettings(data_dir=str(tmp_path), ml_url=DEAD), telemetry_settings=_telemetry(tmp_path))


def _fds_kinds(auth: dict[str, str]) -> list[Request]:
    return [*_common("/v1/fds/reviews", "/v1/fds/evaluate"),
            lambda f: ("GET", f"/v1/fds/transactions/{f.token()}", {"headers": f.headers(auth)}),
            lambda f: ("POST", f"/v1/fds/transactions/{f.token()}/feedback",
                       {"headers": auth, "json": {"is_fraud": True}})]


def _ml(tmp_path: Path) -> FastAPI:
    return create_ml(MlSettings(data_dir=str(tmp_path), default_samples=1_000), telemetry_settings=_telemetry(tmp_path))


def _ml_kinds(auth: dict[str, str]) -> list[Request]:
    return [*_common("/v1/ml/models", "/v1/ml/score"),
            lambda f: ("POST", f"/v1/ml/models/{f.number()}/deploy", {"headers": f.headers(auth)})]


def _admin(tmp_path: Path) -> FastAPI:
    return create_admin(AdminSettings(data_dir=str(tmp_path), fds_url=DEAD, ecommerce_url=DEAD),
                        telemetry_settings=_telemetry(tmp_path))


def _admin_kinds(auth: dict[str, str]) -> list[Request]:
    return [*_common("/v1/admin/reviews", "/v1/admin/stats"),
            lambda f: ("POST", f"/v1/admin/reviews/{f.token()}/resolve",
                       {"headers": f.headers(auth), "json": {"decision": "block", "is_fraud": True}})]


SERVICES = {"ecommerce": Service(_ecommerce, _ecommerce_kinds, "user"), "fds": Service(_fds, _fds_kinds, "admin"),
            "ml": Service(_ml, _ml_kinds, "service"), "admin": Service(_admin, _admin_kinds, "admin")}


def _series(body: str) -> dict[str, set[tuple[tuple[str, str], ...]]]:
    """Label sets per family (a histogram's buckets and a summary's quantiles are one series)."""
    return {family.name: {tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("le", "quantile")))
                          for s in family.samples}
            for family in text_string_to_metric_families(body)}


def _promtool_problems(body: str) -> list[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("promtool not installed")
    checked = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True,
                             timeout=30, check=False)
    # As in tests/services/test_system.py: the seed names one gauge fds_evaluation_latency_summary
    # and gives it a quantile label (SPEC.md: "summary-style quantiles"); promtool's lint objects
    # to both, and only to that.
    return [line for line in (checked.stdout + checked.stderr).splitlines()
            if line.strip() and not line.startswith("fds_evaluation_latency_summary ")]


@pytest.mark.parametrize("name", list(SERVICES))
async def test_random_requests_do_not_grow_metrics(tmp_path: Path, name: str) -> None:
    service = SERVICES[name]
    app = service.build(tmp_path)
    flood = Flood(random.Random(f"cardinality-{name}"))
    statuses: set[int] = set()
    rounds = []
    async with serve(app) as client:
        kinds = service.kinds(await caller_headers(client, app, service.role))
        for _ in range(ROUNDS):
            for kind in kinds:
                for _ in range(PER_KIND):
                    method, path, kwargs = kind(flood)
                    statuses.add((await client.request(method, path, **kwargs)).status_code)
            rounds.append((await client.get("/metrics")).text)
    cap = app.state.telemetry.settings.metric_cardinality_limit
    first, last = _series(rounds[0]), _series(rounds[-1])
    assert statuses & {404, 405} and not {s for s in statuses if s >= 500} - {502}, statuses
    leaked = sorted(value for value in flood.sent if value in rounds[-1])
    assert not leaked, f"random request values in /metrics labels: {leaked[:5]}"
    # The telemetry's own families (otel_setup_*) follow its exporters, which run in the
    # background, not the requests: a first export may land between the two scrapes.
    grown = {family: sorted(last[family] - first.get(family, set())) for family in last
             if last[family] - first.get(family, set()) and not family.startswith("otel_setup_")}
    assert not grown, f"series added by the second round of random requests: {grown}"
    too_many = {family: len(sets) for family, sets in last.items() if len(sets) >= cap}
    assert not too_many, f"families at their cap of {cap} series: {too_many}"
    assert Attr.OVERFLOW_LABEL not in rounds[-1]
    http = next(family for family in last if family.endswith("_http_requests"))
    assert ("endpoint", "unmatched") in {label for labels in last[http] for label in labels}
    assert not _promtool_problems(rounds[-1])
