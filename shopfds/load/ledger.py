"""The books of one ``shopfds load`` run: each checkout the FDS decided, the label it got, the
counts the summary prints; written at the end as ``<prefix>_labels.json`` (the summary) and
``<prefix>_labels.jsonl`` (one line per decided checkout).

Locust users run as greenlets of one process, the labelers among them: every change goes through
one lock. Imports nothing of Locust, so the runner and tests can read what it writes.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from . import mix

# Kept for the labelers, left out of the written lines.
_INTERNAL = ("due", "held", "sent")


class Ledger:
    def __init__(self, label_delay: float) -> None:
        self.label_delay = label_delay
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.checkouts = 0
        self.decisions: dict[str, int] = {}  # "scenario:decision" (or "scenario:cart_conflict")
        self.blocked: dict[str, int] = {}  # attack scenario -> its logins the shop's limiter refused (429)
        self.transactions: dict[str, dict[str, Any]] = {}  # transaction id -> its line, plus _INTERNAL

    def start(self) -> None:
        self.started = time.monotonic()

    def count(self, key: str) -> None:
        with self.lock:
            self.decisions[key] = self.decisions.get(key, 0) + 1

    def refused(self, scenario: str) -> None:
        with self.lock:
            self.blocked[scenario] = self.blocked.get(scenario, 0) + 1

    def checkout(self, order: dict[str, Any], scenario: str, probe: int = 1) -> None:
        """An order the shop created: its decision counted, its FDS verdict kept for the labels."""
        fds = order.get("fds") or {}
        with self.lock:
            self.checkouts += 1
            key = f"{scenario}:{fds.get('decision', 'none')}"
            self.decisions[key] = self.decisions.get(key, 0) + 1
            if not fds.get("transaction_id"):
                return
            self.transactions[fds["transaction_id"]] = {
                "transaction_id": fds["transaction_id"], "order_id": order.get("order_id"), "scenario": scenario,
                "expected": mix.expected(scenario, probe), "decision": fds.get("decision"),
                "degraded": bool(fds.get("degraded")), "risk_factors": fds.get("risk_factors", []),
                "is_fraud": scenario != "normal", "label": None,
                "due": time.monotonic() + self.label_delay, "held": order.get("next_action") == "review"}

    def due(self) -> list[tuple[str, bool]]:
        """(transaction id, is fraud) of the decided, not held, unlabelled checkouts whose label is due."""
        now = time.monotonic()
        with self.lock:
            return [(t, v["is_fraud"]) for t, v in self.transactions.items()
                    if v["due"] <= now and not v["held"] and not v.get("sent")]

    def is_fraud(self, transaction_id: str) -> bool | None:
        with self.lock:
            line = self.transactions.get(transaction_id)
            return None if line is None else bool(line["is_fraud"])

    def labelled(self, transaction_id: str, via: str, status: int) -> None:
        """The label went out (``via`` chargeback or review) and was answered with ``status``."""
        with self.lock:
            line = self.transactions[transaction_id]
            line["sent"] = True
            line["label"] = {"via": via, "is_fraud": line["is_fraud"], "status": status}

    def write(self, prefix: str) -> None:
        with self.lock:
            summary = {"decisions": dict(self.decisions), "orders_with_fds": len(self.transactions),
                       "labeled": sum(1 for v in self.transactions.values() if v.get("sent")),
                       "checkouts": self.checkouts, "seconds": round(time.monotonic() - self.started, 3),
                       "blocked_by_defence": dict(self.blocked)}
            lines = [{k: v for k, v in line.items() if k not in _INTERNAL} for line in self.transactions.values()]
        with open(f"{prefix}_labels.json", "w", encoding="utf-8") as out:
            json.dump(summary, out, indent=2)
        with open(f"{prefix}_labels.jsonl", "w", encoding="utf-8") as out:
            out.writelines(json.dumps(line) + "\n" for line in lines)
