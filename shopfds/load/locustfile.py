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

Weights, pacing and what the FDS is expected to decide per scenario: :mod:`shopfds.load.mix`.
At the end, ``<csv prefix>_labels.json`` sums the run up (checkouts and seconds, decisions by
scenario, logins the shop's limiter refused to attackers) and ``<csv prefix>_labels.jsonl`` has
one line per checkout the FDS decided: transaction id, scenario, expected decisions (null where
the FDS cannot know), observed decision, whether the evaluation was degraded, and the label it
got (a chargeback or a reviewer's resolution, with the status of that request); see
:mod:`shopfds.load.ledger`.
"""

from __future__ import annotations

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
from shopfds.load import mix
from shopfds.load.ledger import Ledger

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
CTI_DEVICES, CTI_IPS = mix.CTI_DEVICES, mix.CTI_IPS

ATTACKS = mix.attacks(ENV)

LEDGER = Ledger(LABEL_DELAY)
_lock = threading.Lock()
VICTIMS: list[tuple[str, str]] = []  # (email, device) of registered shoppers
PRICES: dict[int, float] = {}  # product id -> KRW price, read once from the catalog


def card_number(prefix: str = "4") -> str:
    return demo_card(prefix)


def home_ip() -> str:
    """A shopper's own address (the shop's proxy forwards it as X-Forwarded-For)."""
    first = random.choice((175, 211, 121, 59))
    return f"{first}.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


class _Shop(HttpUser):
    abstract = True
    ip = "127.0.0.1"

    def register(self, email: str, device: str, scenario: str) -> dict[str, str] | None:
        self.client.post("/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Load"},
                         headers={"X-Forwarded-For": self.ip}, name="/v1/auth/register")
        return self.login(email, device, scenario)

    def login(self, email: str, device: str, scenario: str) -> dict[str, str] | None:
        # From the user's own address: the login limiter counts attempts per address, and without
        # it every simulated user would share the load host's one budget.
        with self.client.post("/v1/auth/login", json={"email": email, "password": PASSWORD},
                              headers={"X-Forwarded-For": self.ip}, name="/v1/auth/login",
                              catch_response=True) as response:
            if response.status_code == 429 and scenario in mix.ATTACKS:
                # The shop's login limiter stopped an attacker: the defence working, not a failure.
                response.success()
                LEDGER.refused(scenario)
                return None
            if response.status_code != 200:
                response.failure(f"login {response.status_code}")
                return None
            return {"Authorization": f"Bearer {response.json()['access_token']}", "X-Device-Id": device,
                    "X-Forwarded-For": self.ip}

    def checkout(self, headers: dict[str, str], product: int, quantity: int, card: str, scenario: str,
                 shipping: str = "KR", probe: int = 1) -> dict[str, Any] | None:
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
                LEDGER.count(f"{scenario}:cart_conflict")
                return None
            if response.status_code not in (200, 201):
                response.failure(f"checkout {response.status_code}")
                return None
            order: dict[str, Any] = response.json()
        LEDGER.checkout(order, scenario, probe)
        return order


class Shopper(_Shop):
    """One Locust user plays many shoppers in turn: each visits, browses, buys once or twice and
    leaves (a real shopper does not buy every few seconds, which the velocity rules would flag)."""

    weight = mix.SHOPPER_WEIGHT
    wait_time = between(mix.SHOPPER_WAIT[0] * PACE, mix.SHOPPER_WAIT[1] * PACE)
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
        self.headers = self.register(self.email, self.device, "normal")
        if self.headers:
            with _lock:
                VICTIMS.append((self.email, self.device))

    def pick_product(self) -> int:
        if not PRICES:
            page = self.client.get("/v1/products?limit=100", name="/v1/products").json()
            PRICES.update({p["product_id"]: p["price"] for p in page.get("items", []) if p["category"] != "digital"})
        wanted = math.exp(random.gauss(math.log(self.mean_krw), 0.45))
        return min(PRICES, key=lambda pid: abs(math.log(PRICES[pid] / wanted))) if PRICES else 1

    @task(mix.SHOPPER_TASKS["browse"])
    def browse(self) -> None:
        self.client.get("/v1/products?limit=20", name="/v1/products")
        self.client.get(f"/v1/products/{random.choice(HOT_PRODUCTS)}", name="/v1/products/{product_id}")

    @task(mix.SHOPPER_TASKS["buy"])
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

    weight = mix.FRAUDSTER_WEIGHT
    wait_time = between(mix.FRAUDSTER_WAIT[0] * PACE, mix.FRAUDSTER_WAIT[1] * PACE)

    def on_start(self) -> None:
        # A proxy exit shared by this fraudster's attacks (IP velocity builds up, as with a bot).
        self.ip = home_ip()

    def fresh(self, scenario: str, email: str | None = None, device: str | None = None) -> dict[str, str] | None:
        return self.register(email or f"buyer-{uuid.uuid4().hex[:12]}@example.com",
                             device or f"device-{uuid.uuid4().hex[:12]}", scenario)

    # A weight of 0 (an attack left out by SHOPFDS_LOAD_ATTACKS) drops the task.
    @task(ATTACKS.get("card_testing", 0))
    def card_testing(self) -> None:
        headers, card = self.fresh("card_testing"), card_number("5")
        if headers is None:
            return
        for probe in range(1, random.randint(*mix.CARD_TESTING_PROBES) + 1):
            # the cheapest goods
            self.checkout(headers, 49 + random.randrange(3), 1, card, "card_testing", probe=probe)

    @task(ATTACKS.get("account_takeover", 0))
    def account_takeover(self) -> None:
        with _lock:
            victim = random.choice(VICTIMS) if VICTIMS else None
        if victim is None:
            return
        headers = self.login(victim[0], f"device-{uuid.uuid4().hex[:12]}", "account_takeover")
        if headers:
            self.checkout(headers, random.choice((2, 5, 26)), 2, card_number(), "account_takeover", shipping="NG")

    @task(ATTACKS.get("high_value", 0))
    def high_value(self) -> None:
        headers = self.fresh("high_value")
        if headers:
            self.checkout(headers, 5, random.randint(3, 6), card_number(), "high_value", shipping="US")

    @task(ATTACKS.get("cti_device", 0))
    def cti_device(self) -> None:
        headers = self.fresh("cti_device", device=random.choice(CTI_DEVICES))
        if headers:
            self.checkout(headers, random.randint(1, 48), 1, card_number(), "cti_device")

    @task(ATTACKS.get("cti_ip", 0))
    def cti_ip(self) -> None:
        own, self.ip = self.ip, random.choice(CTI_IPS)
        headers = self.fresh("cti_ip")
        self.ip = own
        if headers:
            self.checkout(headers, random.randint(1, 48), 1, card_number(), "cti_ip")

    @task(ATTACKS.get("disposable_email", 0))
    def disposable_email(self) -> None:
        headers = self.fresh("disposable_email", email=f"x{uuid.uuid4().hex[:10]}@mailinator.com")
        if headers:
            self.checkout(headers, random.randint(1, 48), 1, card_number(), "disposable_email")

    @task(ATTACKS.get("blocked_domain", 0))
    def blocked_domain(self) -> None:
        headers = self.fresh("blocked_domain", email=f"x{uuid.uuid4().hex[:10]}@fraud.example")
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
        headers = service_headers(SECRET, "load-labeler")
        for txn, is_fraud in LEDGER.due():
            start = time.perf_counter()
            response = self.http.post(f"/v1/fds/transactions/{txn}/feedback", headers=headers,
                                      json={"is_fraud": is_fraud})
            _fire("POST", "fds /v1/fds/transactions/{id}/feedback", start, response.status_code not in (200, 409))
            LEDGER.labelled(txn, "chargeback", response.status_code)

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
            txn = item["transaction_id"]
            is_fraud = LEDGER.is_fraud(txn)
            if is_fraud is None:
                continue
            resolved = self.client.post(f"{ADMIN_URL}/v1/admin/reviews/{txn}/resolve", headers=self.headers,
                                        json={"decision": "block" if is_fraud else "approve", "is_fraud": is_fraud},
                                        name="admin /v1/admin/reviews/{transaction_id}/resolve")
            LEDGER.labelled(txn, "review", resolved.status_code)


def _fire(method: str, name: str, start: float, failed: bool) -> None:
    events.request.fire(request_type=method, name=name, response_time=(time.perf_counter() - start) * 1000,
                        response_length=0, exception=RuntimeError("feedback rejected") if failed else None,
                        context={})


@events.test_start.add_listener
def _started(**_kwargs: Any) -> None:
    LEDGER.start()


@events.test_stop.add_listener
def _write_summary(environment: Any, **_kwargs: Any) -> None:
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if prefix:
        LEDGER.write(prefix)
