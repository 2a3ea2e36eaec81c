"""Shop traffic for ``shopfds load``: shoppers, fraudsters, chargebacks and a reviewer (Locust).

Configured by the environment the runner sets (``SHOPFDS_LOAD_*``); the host is ecommerce.

- ``Shopper``: registers, browses (mostly a hot set of products, so the cache hits), carts and
  checks out with their own card and device from home (KR); passes additional authentication.
- ``Fraudster``: one labeled scenario per task, the patterns the FDS is built to catch:
  ``card_testing`` (a burst of tiny payments on one stolen card), ``account_takeover`` (a
  shopper's account from a new device, shipped abroad, big basket), ``high_value`` (a large
  basket on a fresh account), ``cti_device`` / ``cti_ip`` (a device or an address on the
  threat-intel feeds),
  ``disposable_email`` and ``blocked_domain`` accounts.
- ``Labeler``: ground truth arrives later, like chargebacks: ``SHOPFDS_LOAD_LABEL_DELAY`` seconds
  after a decided order, its label goes to FDS feedback.
- ``Reviewer``: an admin working the review queue, resolving held orders by the ground truth.

At the end, ``<csv prefix>_labels.json`` says how many of each scenario ran and were labeled.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
import uuid
from typing import Any

from locust import HttpUser, User, between, constant, events, task

from services.common.money import demo_card
from services.common.security import service_headers
from services.common.settings import DEFAULT_JWT_SECRET

ENV = os.environ
FDS_URL = ENV.get("SHOPFDS_LOAD_FDS_URL", "http://127.0.0.1:8001")
ADMIN_URL = ENV.get("SHOPFDS_LOAD_ADMIN_URL", "http://127.0.0.1:8003")
PACE = float(ENV.get("SHOPFDS_LOAD_PACE", "1.0"))  # seconds between a user's actions
LABEL_DELAY = float(ENV.get("SHOPFDS_LOAD_LABEL_DELAY", "5"))
VERIFY_CODE = ENV.get("SHOPFDS_LOAD_VERIFY_CODE", "000000")
SECRET = ENV.get("SHOPFDS_JWT_SECRET", DEFAULT_JWT_SECRET)
ADMIN = (ENV.get("SHOPFDS_ADMIN_USERNAME", "admin"), ENV.get("SHOPFDS_ADMIN_PASSWORD", "admin"))
PASSWORD = "load-test password 1"
HOT_PRODUCTS = list(range(1, 13))
CTI_DEVICES = ("device-emulator-farm-01", "device-emulator-farm-02", "device-fraud-kit")
CTI_IPS = ("198.51.100.66", "198.51.100.67", "203.0.113.25")  # on the FDS's bad-IP feed

_lock = threading.Lock()
LABELS: dict[str, dict[str, Any]] = {}  # transaction id -> {is_fraud, due, scenario, held}
VICTIMS: list[tuple[str, str]] = []  # (email, device) of registered shoppers
COUNTS: dict[str, int] = {}
PRICES: dict[int, float] = {}  # product id -> KRW price, read once from the catalog


def card_number(prefix: str = "4") -> str:
    return demo_card(prefix)


def _count(key: str) -> None:
    with _lock:
        COUNTS[key] = COUNTS.get(key, 0) + 1


def home_ip() -> str:
    """A shopper's own address (the shop's proxy forwards it as X-Forwarded-For)."""
    first = random.choice((175, 211, 121, 59))
    return f"{first}.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


class _Shop(HttpUser):
    abstract = True
    ip = "127.0.0.1"

    def register(self, email: str, device: str) -> dict[str, str] | None:
        self.client.post("/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Load"},
                         name="/v1/auth/register")
        return self.login(email, device)

    def login(self, email: str, device: str) -> dict[str, str] | None:
        with self.client.post("/v1/auth/login", json={"email": email, "password": PASSWORD},
                              name="/v1/auth/login", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"login {response.status_code}")
                return None
            return {"Authorization": f"Bearer {response.json()['access_token']}", "X-Device-Id": device,
                    "X-Forwarded-For": self.ip}

    def checkout(self, headers: dict[str, str], product: int, quantity: int, card: str, scenario: str,
                 shipping: str = "KR") -> dict[str, Any] | None:
        self.client.post("/v1/cart/items", headers=headers, json={"product_id": product, "quantity": quantity},
                         name="/v1/cart/items")
        body = {"payment": {"method": "card", "card_number": card, "expiry": "12/30", "cvv": "123"},
                "billing_country": "KR", "shipping_country": shipping}
        with self.client.post("/v1/orders", headers={**headers, "Idempotency-Key": uuid.uuid4().hex}, json=body,
                              name="/v1/orders", catch_response=True) as response:
            if response.status_code == 409:
                # An account takeover shares the victim's cart: one side's checkout can find it
                # emptied by the other. The shop answered correctly; the race is the traffic's.
                response.success()
                _count(f"{scenario}:cart_conflict")
                return None
            if response.status_code not in (200, 201):
                response.failure(f"checkout {response.status_code}")
                return None
            order: dict[str, Any] = response.json()
        self.label(order, scenario)
        return order

    def label(self, order: dict[str, Any], scenario: str) -> None:
        fds = order.get("fds") or {}
        _count(f"{scenario}:{fds.get('decision', 'none')}")
        if fds.get("transaction_id"):
            with _lock:
                LABELS[fds["transaction_id"]] = {"is_fraud": scenario != "normal", "scenario": scenario,
                                                 "due": time.monotonic() + LABEL_DELAY,
                                                 "held": order.get("next_action") == "review"}


class Shopper(_Shop):
    """One Locust user plays many shoppers in turn: each visits, browses, buys once or twice and
    leaves (a real shopper does not buy every few seconds, which the velocity rules would flag)."""

    weight = 8
    wait_time = between(0.5 * PACE, 1.5 * PACE)
    purchases_per_visit = 2

    def on_start(self) -> None:
        self.arrive()

    def arrive(self) -> None:
        # Spending like the shoppers the fraud model learned from (services/ml/population.py):
        # a personal mean around 45,000 KRW, each basket near it.
        self.mean_krw = math.exp(random.gauss(math.log(45_000), 0.8))
        self.ip = home_ip()
        self.email = f"shopper-{uuid.uuid4().hex[:12]}@example.com"
        self.device = f"device-{uuid.uuid4().hex[:12]}"
        self.card = card_number()
        self.bought = 0
        self.headers = self.register(self.email, self.device)
        if self.headers:
            with _lock:
                VICTIMS.append((self.email, self.device))

    def pick_product(self) -> int:
        if not PRICES:
            page = self.client.get("/v1/products?limit=100", name="/v1/products").json()
            PRICES.update({p["product_id"]: p["price"] for p in page.get("items", []) if p["category"] != "digital"})
        wanted = math.exp(random.gauss(math.log(self.mean_krw), 0.45))
        return min(PRICES, key=lambda pid: abs(math.log(PRICES[pid] / wanted))) if PRICES else 1

    @task(4)
    def browse(self) -> None:
        self.client.get("/v1/products?limit=20", name="/v1/products")
        self.client.get(f"/v1/products/{random.choice(HOT_PRODUCTS)}", name="/v1/products/{product_id}")

    @task(1)
    def buy(self) -> None:
        if not self.headers:
            return
        order = self.checkout(self.headers, self.pick_product(), 1, self.card, "normal")
        if order and order.get("next_action") == "verify":
            self.client.post(f"/v1/orders/{order['order_id']}/verify", headers=self.headers,
                             json={"code": VERIFY_CODE}, name="/v1/orders/{order_id}/verify")
        self.bought += 1
        if self.bought >= self.purchases_per_visit:
            self.arrive()  # the next visitor


class Fraudster(_Shop):
    """Attacks are rarer than shopping, but not so rare that a minute of demo labels too few of
    them: about one checkout in three is fraudulent, so that the precision and recall of a default
    ``shopfds demo`` rest on a hundred or more labels (``shopfds report`` prints their n and says
    "too few labels" under 30)."""

    weight = 2
    wait_time = between(3 * PACE, 6 * PACE)

    def on_start(self) -> None:
        # A proxy exit shared by this fraudster's attacks (IP velocity builds up, as with a bot).
        self.ip = home_ip()

    def fresh(self, email: str | None = None, device: str | None = None) -> dict[str, str] | None:
        return self.register(email or f"buyer-{uuid.uuid4().hex[:12]}@example.com",
                             device or f"device-{uuid.uuid4().hex[:12]}")

    @task(3)
    def card_testing(self) -> None:
        headers, card = self.fresh(), card_number("5")
        if headers is None:
            return
        for _ in range(random.randint(3, 5)):
            self.checkout(headers, 49 + random.randrange(3), 1, card, "card_testing")  # the cheapest goods

    @task(2)
    def account_takeover(self) -> None:
        with _lock:
            victim = random.choice(VICTIMS) if VICTIMS else None
        if victim is None:
            return
        headers = self.login(victim[0], f"device-{uuid.uuid4().hex[:12]}")
        if headers:
            self.checkout(headers, random.choice((2, 5, 26)), 2, card_number(), "account_takeover", shipping="NG")

    @task(1)
    def high_value(self) -> None:
        headers = self.fresh()
        if headers:
            self.checkout(headers, 5, random.randint(3, 6), card_number(), "high_value", shipping="US")

    @task(1)
    def cti_device(self) -> None:
        headers = self.fresh(device=random.choice(CTI_DEVICES))
        if headers:
            self.checkout(headers, random.randint(1, 48), 1, card_number(), "cti_device")

    @task(1)
    def cti_ip(self) -> None:
        own, self.ip = self.ip, random.choice(CTI_IPS)
        headers = self.fresh()
        self.ip = own
        if headers:
            self.checkout(headers, random.randint(1, 48), 1, card_number(), "cti_ip")

    @task(1)
    def disposable_email(self) -> None:
        headers = self.fresh(email=f"x{uuid.uuid4().hex[:10]}@mailinator.com")
        if headers:
            self.checkout(headers, random.randint(1, 48), 1, card_number(), "disposable_email")

    @task(1)
    def blocked_domain(self) -> None:
        headers = self.fresh(email=f"x{uuid.uuid4().hex[:10]}@fraud.example")
        if headers:
            self.checkout(headers, random.randint(1, 48), 1, card_number(), "blocked_domain")


class Labeler(User):
    """Chargebacks and confirmations: the label of each decided order, some seconds later."""

    fixed_count = 1
    wait_time = constant(1)

    def on_start(self) -> None:
        import httpx

        self.http = httpx.Client(base_url=FDS_URL, timeout=5)

    @task
    def send_due_labels(self) -> None:
        now = time.monotonic()
        with _lock:
            due = [(t, v) for t, v in LABELS.items() if v["due"] <= now and not v["held"] and not v.get("sent")]
        headers = service_headers(SECRET, "load-labeler")
        for txn, label in due:
            start = time.perf_counter()
            response = self.http.post(f"/v1/fds/transactions/{txn}/feedback", headers=headers,
                                      json={"is_fraud": label["is_fraud"]})
            _fire("POST", "fds /v1/fds/transactions/{id}/feedback", start, response.status_code not in (200, 409))
            with _lock:
                label["sent"] = True

    def on_stop(self) -> None:
        self.http.close()


class Reviewer(HttpUser):
    """An analyst on the admin console: resolves held orders by what they really were."""

    fixed_count = 1
    wait_time = constant(2)

    def on_start(self) -> None:
        response = self.client.post(f"{ADMIN_URL}/v1/admin/auth/login", name="admin /v1/admin/auth/login",
                                    json={"username": ADMIN[0], "password": ADMIN[1]})
        token = response.json().get("access_token") if response.status_code == 200 else None
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    @task
    def work_the_queue(self) -> None:
        if not self.headers:
            return
        response = self.client.get(f"{ADMIN_URL}/v1/admin/reviews?limit=20", headers=self.headers,
                                   name="admin /v1/admin/reviews")
        items = response.json().get("items", []) if response.status_code == 200 else []
        for item in items:
            with _lock:
                label = LABELS.get(item["transaction_id"])
            if label is None:
                continue
            decision = "block" if label["is_fraud"] else "approve"
            self.client.post(f"{ADMIN_URL}/v1/admin/reviews/{item['transaction_id']}/resolve", headers=self.headers,
                             json={"decision": decision, "is_fraud": label["is_fraud"]},
                             name="admin /v1/admin/reviews/{transaction_id}/resolve")
            with _lock:
                label["sent"] = True


def _fire(method: str, name: str, start: float, failed: bool) -> None:
    events.request.fire(request_type=method, name=name, response_time=(time.perf_counter() - start) * 1000,
                        response_length=0, exception=RuntimeError("feedback rejected") if failed else None,
                        context={})


@events.test_stop.add_listener
def _write_summary(environment: Any, **_kwargs: Any) -> None:
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if not prefix:
        return
    with _lock:
        summary = {"decisions": dict(COUNTS), "labeled": sum(1 for v in LABELS.values() if v.get("sent")),
                   "orders_with_fds": len(LABELS)}
    with open(f"{prefix}_labels.json", "w", encoding="utf-8") as out:
        json.dump(summary, out, indent=2)
