"""PII planted in every input path of the four services never leaves them unmasked.

The services run as real processes on PostgreSQL and Redis with OTLP traces, metrics and logs
and a Sentry DSN pointed at ``tests.receiver``, under uvicorn's defaults (access log on, as in
the Dockerfile). One shopper plants a card number, a CVV, a password, JWTs and an e-mail address
in JSON bodies (register, login, checkout, admin login), query strings (plain, URL-encoded, card
digits in groups), URL path segments, headers (User-Agent, Referer, ``X-`` headers,
``Authorization`` bearer and basic) and cookies. Two requests fail deep in the database (a
trigger refuses the insert): the Sentry events carry the handlers' frame locals (request body,
parsed model, SQL parameters with the password hash) and the server spans an exception event.

Then every artifact is searched as raw bytes, for every secret and its URL-encoded and
JSON-escaped forms: OTLP spans, logs and metrics, Sentry envelopes, the local trace store, the
JSONL log files, each process's stdout/stderr and each service's ``/metrics``. The card may
show only as BIN + last 4, and that masked form must show somewhere: the test tells scrubbing
apart from "nothing was exported".
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import jwt
import pytest

from otel_setup.scrub import mask_card
from services.common.money import demo_card
from shopfds.procs import ROOT, free_port, stop, wait_http
from shopfds.stack import SERVICES, service_env
from tests.receiver import Receiver
from tests.services.conftest import PG_DSN, REDIS_URL

TRIP_WIRE = "trip-wire"  # rows carrying this are refused by the database (see _trip_wires)


@dataclass
class Planted:
    card: str = field(default_factory=demo_card)
    cvv: str = "7391"
    password: str = field(default_factory=lambda: f"Sesame {uuid.uuid4().hex[:10]} open!")
    email: str = field(default_factory=lambda: f"pii-{uuid.uuid4().hex[:10]}@example.org")
    jwt: str = field(default_factory=lambda: jwt.encode({"sub": uuid.uuid4().hex, "role": "user"},
                                                        uuid.uuid4().hex, algorithm="HS256"))
    issued: list[str] = field(default_factory=list)  # the access tokens the shop hands out

    @property
    def basic(self) -> str:
        return base64.b64encode(f"{self.email}:{self.password}".encode()).decode()

    def secrets(self) -> dict[str, str]:
        found = {"password": self.password, "email": self.email, "jwt": self.jwt,
                 "basic auth": self.basic, "e-mail local part": self.email.split("@")[0]}
        found.update({f"issued token {i}": token for i, token in enumerate(self.issued)})
        return found


def variants(secret: str) -> set[bytes]:
    """The secret as raw text, URL-encoded (both styles) and JSON-escaped."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret), quote(secret),
             json.dumps(secret)[1:-1], json.dumps(json.dumps(secret))[3:-3]}
    return {form.encode() for form in forms}


def card_pattern(card: str) -> re.Pattern[bytes]:
    """Any ten digits of the card in a row (more than its BIN and last four), separated or not,
    as people type them and as URLs encode them."""
    separator = rb"(?:[ +.\-]|%20|%2[dD])?"
    windows = [separator.join(digit.encode() for digit in card[i:i + 10]) for i in range(len(card) - 9)]
    return re.compile(rb"|".join(windows))


# What the shop stores instead of a password is as good as one to an offline attacker.
PASSWORD_HASH = re.compile(rb"\$argon2(?:id|i|d)\$")


# A CVV is three or four digits, which timestamps hold everywhere: it leaks as the value of its key.
def cvv_pattern(cvv: str) -> re.Pattern[bytes]:
    return re.compile(rb"(?i)(?:cvv|cvc|security.?code)(?:[^0-9a-z]|%[0-9a-f]{2}){0,10}" + cvv.encode() + rb"\b")


@dataclass
class Artifacts:
    by_source: dict[str, bytes] = field(default_factory=dict)
    receiver: Receiver | None = None


@pytest.fixture(scope="module")
def planted() -> Planted:
    return Planted()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, planted: Planted) -> Iterator[Artifacts]:
    workdir: Path = tmp_path_factory.mktemp("pii")
    database = f"shopfds_pii_{uuid.uuid4().hex[:10]}"
    _postgres(PG_DSN, f'CREATE DATABASE "{database}"')
    url = PG_DSN.rsplit("/", 1)[0] + f"/{database}"
    found = Artifacts()
    try:
        with Receiver() as receiver:
            env = {"DATABASE_URL": url, "REDIS_URL": REDIS_URL,
                   "SHOPFDS_CACHE_PREFIX": f"shopfds-pii:{uuid.uuid4().hex[:8]}:",
                   "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
                   "SENTRY_DSN": f"http://public@127.0.0.1:{receiver.port}/1",
                   "OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_BLRP_SCHEDULE_DELAY": "200",
                   "OTEL_METRIC_EXPORT_INTERVAL": "1000", "SHOPFDS_LOG_FORMAT": "json",
                   "SHOPFDS_PAYMENT_FAILURE_RATE": "0", "SHOPFDS_FDS_FAIL_POLICY": "approve"}
            with _services(workdir, env) as urls:
                _trip_wires(url)
                _plant_everywhere(urls, planted)
                for name, base in urls.items():
                    for accept in ("text/plain", "application/openmetrics-text"):
                        found.by_source[f"/metrics of {name} ({accept})"] = httpx.get(
                            f"{base}/metrics", headers={"Accept": accept}, timeout=10).content
            # The processes have stopped: every exporter flushed at shutdown.
            found.receiver = receiver
            found.by_source["OTLP and Sentry requests"] = receiver.all_bytes()
        for kind, directory in (("trace store", workdir / "traces"), ("log file", workdir / "logs"),
                                ("stdout/stderr", workdir / "out")):
            for path in sorted(directory.iterdir()):
                found.by_source[f"{kind} {path.name}"] = path.read_bytes()
        yield found
    finally:
        _postgres(PG_DSN, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@contextmanager
def _services(workdir: Path, env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The four services as ``shopfds.stack.run_stack`` wires them, but with uvicorn's own
    defaults as in the Dockerfile: its access log (request line with the query string) is on."""
    urls = {name: f"http://127.0.0.1:{free_port()}" for name in SERVICES}
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **service_env(workdir, urls, env)}
    (workdir / "out").mkdir(parents=True)
    procs: list[subprocess.Popen[bytes]] = []
    with ExitStack() as started:
        started.callback(_stop_all, procs)
        for name in SERVICES:
            out = started.enter_context((workdir / "out" / f"{name}.log").open("wb"))
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", f"services.{name}.main:app", "--host", "127.0.0.1",
                 "--port", urls[name].rsplit(":", 1)[1]], cwd=ROOT, env=full_env, stdout=out, stderr=out))
        # Started together (the FDS loads the ML model later if ML is not up yet): faster on two cores.
        for name, proc in zip(SERVICES, procs, strict=True):
            wait_http(f"{urls[name]}/health", timeout=60, proc=proc)
        yield urls


def _stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:  # all at once: each flushes its exporters while the others do
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        stop(proc)


def _postgres(dsn: str, *statements: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        try:
            conn = await asyncpg.connect(dsn, timeout=3)
        except OSError as exc:
            (pytest.fail if os.environ.get("CI") else pytest.skip)(f"PostgreSQL not running: {exc}")
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def _trip_wires(database_url: str) -> None:
    """The database refuses a user named, or an order from a device called, ``trip-wire``: a
    real failure deep in a request, with the request's secrets in the frames' locals."""
    _postgres(
        database_url,
        "CREATE FUNCTION refuse_row() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'row refused by the storage layer'; END $$",
        f"CREATE TRIGGER refuse_user BEFORE INSERT ON ecommerce_users FOR EACH ROW "
        f"WHEN (NEW.name = '{TRIP_WIRE}') EXECUTE FUNCTION refuse_row()",
        f"CREATE TRIGGER refuse_order BEFORE INSERT ON ecommerce_orders FOR EACH ROW "
        f"WHEN (NEW.device_id = '{TRIP_WIRE}') EXECUTE FUNCTION refuse_row()",
    )


def _noise(p: Planted, token: str | None = None) -> dict[str, Any]:
    """Headers, cookies and a query string each carrying every secret."""
    grouped = "+".join(p.card[i:i + 4] for i in range(0, len(p.card), 4))
    query = (f"card={p.card}&cvv={p.cvv}&password={quote_plus(p.password)}&email={p.email}&token={p.jwt}"
             f"&mail={quote(p.email, safe='')}&pan={grouped}&q={quote(p.card[:8] + ' ' + p.card[8:])}")
    headers = {
        "User-Agent": f"pii-test/1.0 (card {p.card}; {p.email}; {p.jwt})",
        "Referer": f"https://shop.example/checkout?{query}",
        "X-Card-Number": p.card, "X-Cvv": p.cvv, "X-Password": p.password, "X-User-Email": p.email,
        "X-Debug": f"card={p.card} cvv={p.cvv} password={p.password} email={p.email} jwt={p.jwt}",
        "Authorization": f"Bearer {token or p.jwt}",
    }
    cookies = {"session": p.jwt, "email": p.email, "card": p.card, "cvv": p.cvv, "password": p.password}
    return {"headers": headers, "cookies": cookies, "query": query}


def _plant_everywhere(urls: dict[str, str], p: Planted) -> None:
    shop = httpx.Client(base_url=urls["ecommerce"], timeout=15)
    noise = _noise(p)
    with shop:
        # The database refuses the first try: the register handler's locals hold the password and
        # the e-mail address, the SQL parameters the password's hash. The second try succeeds.
        refused = shop.post("/v1/auth/register", headers=noise["headers"],
                            json={"email": p.email, "password": p.password, "name": TRIP_WIRE})
        assert refused.status_code == 503, refused.text
        assert shop.post("/v1/auth/register", json={"email": p.email, "password": p.password, "name": "Kim"},
                         headers=noise["headers"]).status_code == 201
        assert shop.post("/v1/auth/login", json={"email": p.email, "password": p.password + "x"}).status_code == 401
        token = shop.post("/v1/auth/login", json={"email": p.email, "password": p.password}).json()["access_token"]
        p.issued.append(token)
        noise = _noise(p, token)
        shop.cookies.update(noise["cookies"])
        auth = {**noise["headers"], "X-Device-Id": "device-pii-1"}
        product = shop.get(f"/v1/products?{noise['query']}", headers=auth).json()["items"][0]["product_id"]
        checkout = {"payment": {"method": "card", "card_number": p.card, "expiry": "12/30", "cvv": p.cvv},
                    "billing_country": "KR", "shipping_country": "KR"}
        for device in ("device-pii-1", TRIP_WIRE):
            assert shop.post("/v1/cart/items", json={"product_id": product, "quantity": 1},
                             headers=auth).status_code == 201
            answer = shop.post(f"/v1/orders?{noise['query']}", json=checkout,
                               headers={**auth, "X-Device-Id": device, "Idempotency-Key": uuid.uuid4().hex})
            assert answer.status_code == (201 if device != TRIP_WIRE else 503), answer.text
        # Path segments: a card number, an e-mail address and a JWT where an id belongs.
        for segment in (p.card, p.email, quote(p.email, safe=''), p.jwt):
            assert shop.get(f"/v1/orders/{segment}", headers=auth).status_code in (404, 422)
        assert shop.get(f"/no/such/{p.card}/{p.email}/{p.jwt}").status_code == 404
        shop.get("/health", headers={**noise["headers"], "Authorization": f"Basic {p.basic}"})
    for name in ("fds", "ml", "admin"):
        with httpx.Client(base_url=urls[name], timeout=15, cookies=noise["cookies"]) as client:
            client.get(f"/health?{noise['query']}", headers=noise["headers"])
            client.get(f"/v1/{name}/{p.card}/{p.email}", headers=noise["headers"])
            client.post(f"/v1/{name}/evaluate?{noise['query']}", headers=noise["headers"],
                        json={"card_number": p.card, "cvv": p.cvv, "email": p.email, "password": p.password})
    with httpx.Client(base_url=urls["admin"], timeout=15) as admin:
        assert admin.post("/v1/admin/auth/login", headers=noise["headers"],
                          json={"username": p.email, "password": p.password}).status_code == 401
    time.sleep(0.5)  # let the batch processors pick up the last spans and log records


def _leaks(artifacts: Artifacts, p: Planted) -> list[str]:
    found = []
    patterns = {"card": card_pattern(p.card), "cvv": cvv_pattern(p.cvv), "password hash": PASSWORD_HASH}
    for source, blob in artifacts.by_source.items():
        for name, secret in p.secrets().items():
            for form in variants(secret):
                if form in blob:
                    at = blob.index(form)
                    found.append(f"{name} in {source}: ...{blob[max(0, at - 80):at + 40]!r}...")
        for name, pattern in patterns.items():
            for match in pattern.finditer(blob):
                found.append(f"{name} in {source}: ...{blob[max(0, match.start() - 60):match.end() + 40]!r}...")
    return found


def test_no_planted_secret_leaves_any_service(artifacts: Artifacts, planted: Planted) -> None:
    leaks = _leaks(artifacts, planted)
    assert not leaks, "\n".join(leaks[:40])


def test_every_artifact_was_written(artifacts: Artifacts) -> None:
    receiver = artifacts.receiver
    assert receiver is not None
    services = {service for service, _ in receiver.spans()}
    assert set(SERVICES) <= services, services
    assert receiver.logs() and receiver.metrics()
    kinds = {source.split(" ")[0] for source, blob in artifacts.by_source.items() if blob.strip()}
    assert {"trace", "log", "stdout/stderr", "/metrics", "OTLP"} <= kinds, sorted(artifacts.by_source)
    empty = [source for source, blob in artifacts.by_source.items()
             if source.startswith(("/metrics", "trace store")) and not blob.strip()]
    assert not empty, empty


def test_the_failing_requests_were_reported_with_their_frames(artifacts: Artifacts, planted: Planted) -> None:
    receiver = artifacts.receiver
    assert receiver is not None
    events = [e for e in receiver.sentry_events() if e.get("exception")]
    frames = [frame for event in events for exc in event["exception"]["values"]
              for frame in (exc.get("stacktrace") or {}).get("frames", [])]
    handlers = {frame.get("function") for frame in frames if frame.get("vars")}
    # Both refused inserts were captured with the locals of the handlers that held the secrets.
    assert {"checkout", "register"} <= handlers, handlers
    exception_events = [event for _, span in receiver.spans() for event in span.events
                        if event.name == "exception"]
    assert len(exception_events) >= 2


def test_the_card_shows_as_bin_and_last_four_where_it_shows(artifacts: Artifacts, planted: Planted) -> None:
    masked = mask_card(planted.card).encode()
    email = f"{planted.email[0]}***@{planted.email.split('@')[1]}".encode()
    receiver = artifacts.receiver
    assert receiver is not None
    # Each path carried the planted data and scrubbed it (rather than exporting nothing).
    seen = {
        "OTLP spans": [span.SerializeToString() for _, span in receiver.spans()],
        "OTLP logs": [record.SerializeToString() for record in receiver.logs()],
        "Sentry events": [json.dumps(event).encode() for event in receiver.sentry_events()],
        **{kind: [blob for source, blob in artifacts.by_source.items() if source.startswith(kind)]
           for kind in ("trace store", "log file", "stdout/stderr")},
    }
    missing = [f"{what} in {kind}" for kind, blobs in seen.items() for what, form in
               (("masked card", masked), ("masked e-mail", email)) if not any(form in b for b in blobs)]
    assert not missing, missing
