"""FDS accuracy on a held-out labeled set, through the real FDS over HTTP, with 95 % intervals.

    python -m bench.accuracy [--transactions N] [--seed S] [--json FILE]

The held-out set comes from the project's generator (``services.ml.generator``) with a seed other
than the one the deployed model was trained on (``SHOPFDS_DEFAULT_SEED``, 7): every documented
fraud pattern, ordinary shoppers, and legitimate shoppers who look unusual (big first purchase,
big-ticket buy, new device, gift abroad, travel; ``population.UNUSUAL``).

The ML service and the FDS run as uvicorn processes on free ports (the FDS on Redis, under its
own key prefix); the transactions are posted to ``POST /v1/fds/evaluate`` in time order, so the
FDS builds every shopper's amount history and known devices itself. The velocity windows are
the one thing a replay cannot build in real time (three simulated days posted in a minute would
all fall in one hour), so before each transaction the bench writes that transaction's windows in
Redis as they stood at its simulated moment: the earlier events on the same user, card, IP and
device still inside the window, at their simulated ages before now. The FDS then adds the
transaction itself and counts, as it does live.

"Flagged" is reported both ways: additional authentication counted as flagged (the FDS's own
definition: its TP/FP counters and precision gauge) and only hold/block. Targets (the issue's):
precision >= 0.90 and recall >= 0.90 overall, no pattern's recall under 0.80, legitimate unusual
shoppers blocked < 1 %. Figures are printed with their verdicts, never asserted. The rule book,
weights and thresholds were tuned on another seed (8) and only measured here, so the figures are
not fitted to this set.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict, deque
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis
from rich.console import Console
from rich.table import Table

from services.common.security import service_headers
from services.common.settings import DEFAULT_JWT_SECRET
from services.ml.features import CARD_WINDOW, DEVICE_WINDOW, IP_WINDOW, SMALL_AMOUNT_KRW, USER_WINDOW
from services.ml.generator import GeneratedTxn, generate
from services.ml.population import UNUSUAL
from services.ml.scenarios import WEIGHTS
from shopfds.procs import uvicorn_app

HOLDOUT_SEED = 20_261_201
TRAINING_SEED = 7  # the ML service's default model (SHOPFDS_DEFAULT_SEED)
REDIS_URL = "redis://127.0.0.1:6379/0"
DECISIONS = ("approve", "additional_auth", "hold", "block")
VIEWS = {"step_up_flagged": ("additional_auth", "hold", "block"), "hold_block_only": ("hold", "block")}
TARGETS = {"precision": 0.90, "recall": 0.90, "pattern_recall": 0.80, "unusual_blocked": 0.01}
Z95 = 1.959963984540054
err = Console(stderr=True)


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of k successes in n (None without trials)."""
    if n == 0:
        return None
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def f1_interval(tp: int, fp: int, fn: int, tn: int, resamples: int = 4000,
                seed: int = 0) -> tuple[float, float] | None:
    """A 95 % percentile-bootstrap interval of F1: the confusion counts redrawn (multinomial, the
    same total) ``resamples`` times. F1 is no proportion, so no Wilson interval applies."""
    total = tp + fp + fn + tn
    if tp == 0 or total == 0:
        return None
    draws = np.random.default_rng(seed).multinomial(total, np.array([tp, fp, fn, tn]) / total, size=resamples)
    t, f_p, f_n = draws[:, 0], draws[:, 1], draws[:, 2]
    f1 = np.divide(2 * t, 2 * t + f_p + f_n, out=np.zeros(resamples), where=(2 * t + f_p + f_n) > 0)
    lo, hi = np.percentile(f1, [2.5, 97.5])
    return float(lo), float(hi)


def ratio(k: int, n: int) -> dict[str, Any]:
    ci = wilson(k, n)
    return {"k": k, "n": n, "value": k / n if n else None, "ci95": list(ci) if ci else None}


class WindowFeeder:
    """Writes each transaction's velocity windows in Redis as they stood at its simulated time."""

    KINDS = (("user", USER_WINDOW), ("card", CARD_WINDOW), ("ip", IP_WINDOW), ("device", DEVICE_WINDOW),
             ("card_small", CARD_WINDOW))

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.events: dict[str, deque[float]] = defaultdict(deque)

    @staticmethod
    def keys(t: GeneratedTxn) -> dict[str, str | None]:
        # The FDS's key of each window (services/fds/context.py).
        card = f"{t.card_bin}:{t.card_last4}" if t.card_bin and t.card_last4 else None
        return {"user": t.user_id, "card": card, "ip": t.ip_address, "device": t.device_id,
                "card_small": card if t.amount_krw < SMALL_AMOUNT_KRW else None}

    def before(self, t: GeneratedTxn, sim_now: float) -> None:
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        keys = self.keys(t)
        for kind, window in self.KINDS:
            key = keys[kind]
            if key is None:
                continue
            events = self.events[f"{kind}:{key}"]
            while events and events[0] <= sim_now - window:
                events.popleft()
            redis_key = f"{self.prefix}fds:v:{kind}:{key}"
            pipe.delete(redis_key)
            if events:
                pipe.zadd(redis_key, {f"sim:{i}": now - (sim_now - at) for i, at in enumerate(events)})
                pipe.expire(redis_key, int(window) + 1)
            events.append(sim_now)
        pipe.execute()


def evaluate(fds: str, txns: list[GeneratedTxn], feeder: WindowFeeder) -> list[str]:
    start = txns[0].created_at
    decisions = []
    with httpx.Client(base_url=fds, timeout=10) as client:
        for i, t in enumerate(txns):
            feeder.before(t, (t.created_at - start).total_seconds())
            response = client.post("/v1/fds/evaluate", json=t.transaction())
            response.raise_for_status()
            decisions.append(response.json()["decision"])
            if (i + 1) % 2000 == 0:
                err.print(f"  {i + 1}/{len(txns)} evaluated")
    return decisions


def group_of(t: GeneratedTxn) -> str:
    return t.pattern if t.is_fraud else (t.unusual or "ordinary")


def measure(txns: list[GeneratedTxn], decisions: list[str]) -> dict[str, Any]:
    by_decision = {d: Counter() for d in DECISIONS}
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for t, d in zip(txns, decisions, strict=True):
        by_decision[d]["fraud" if t.is_fraud else "legit"] += 1
        groups[group_of(t)][d] += 1
    views = {}
    for view, flagged in VIEWS.items():
        tp = sum(by_decision[d]["fraud"] for d in flagged)
        fp = sum(by_decision[d]["legit"] for d in flagged)
        fn = sum(c["fraud"] for d, c in by_decision.items() if d not in flagged)
        tn = sum(c["legit"] for d, c in by_decision.items() if d not in flagged)
        precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
        p, r = precision["value"] or 0.0, recall["value"] or 0.0
        per_pattern = {name: ratio(sum(groups[name][d] for d in flagged), sum(groups[name].values()))
                       for name in WEIGHTS}
        views[view] = {"tp": tp, "fp": fp, "tn": tn, "fn": fn, "precision": precision, "recall": recall,
                       "f1": 2 * p * r / (p + r) if p + r else 0.0,
                       "f1_ci95": list(ci) if (ci := f1_interval(tp, fp, fn, tn)) else None,
                       "pattern_recall": per_pattern}
    legit = {name: {"n": sum(groups[name].values()), "flagged": ratio(sum(groups[name][d] for d in VIEWS[
        "step_up_flagged"]), sum(groups[name].values())), "blocked": ratio(groups[name]["block"],
                                                                           sum(groups[name].values()))}
             for name in ("ordinary", *UNUSUAL)}
    unusual_n = sum(legit[name]["n"] for name in UNUSUAL)
    unusual_blocked = ratio(sum(legit[name]["blocked"]["k"] for name in UNUSUAL), unusual_n)
    return {"confusion": {d: dict(c) for d, c in by_decision.items()},
            "groups": {name: dict(c) for name, c in groups.items()}, "views": views, "legit": legit,
            "unusual_blocked": unusual_blocked, "verdicts": verdicts(views, unusual_blocked)}


def verdicts(views: dict[str, Any], unusual_blocked: dict[str, Any]) -> dict[str, dict[str, bool]]:
    out = {}
    for view, v in views.items():
        out[view] = {
            "precision >= 0.90": (v["precision"]["value"] or 0.0) >= TARGETS["precision"],
            "recall >= 0.90": (v["recall"]["value"] or 0.0) >= TARGETS["recall"],
            "every pattern's recall >= 0.80": all((r["value"] or 0.0) >= TARGETS["pattern_recall"]
                                                  for r in v["pattern_recall"].values()),
            "unusual legitimate blocked < 1 %": (unusual_blocked["value"] or 0.0) < TARGETS["unusual_blocked"],
        }
    return out


def _cell(r: dict[str, Any]) -> str:
    if r["value"] is None:
        return "no data"
    lo, hi = r["ci95"]
    return f"{r['value']:.3f} [{lo:.3f}, {hi:.3f}] (n {r['n']})"


def show(results: dict[str, Any], console: Console) -> None:
    m = results["metrics"]
    model = results["model"]["metrics"]
    console.print(f"[bold]FDS accuracy[/] on {results['transactions']} held-out transactions (seed "
                  f"{results['seed']}, model v{results['model']['version']} trained on seed "
                  f"{results['training_seed']}: holdout AUC {model['auc']:.4f}, precision {model['precision']:.3f}, "
                  f"recall {model['recall']:.3f}), {results['seconds']:.0f} s; intervals: Wilson 95 %")
    table = Table("decision", "fraud", "legitimate")
    for d in DECISIONS:
        table.add_row(d, str(m["confusion"][d].get("fraud", 0)), str(m["confusion"][d].get("legit", 0)))
    console.print(table)
    for view, v in m["views"].items():
        table = Table(f"{view}: figure", "value [95 % CI] (n)", title=f"flagged = {' / '.join(VIEWS[view])}")
        table.add_row("precision", _cell(v["precision"]))
        table.add_row("recall", _cell(v["recall"]))
        f1_ci = v.get("f1_ci95")
        table.add_row("F1", f"{v['f1']:.3f}" + (f" [{f1_ci[0]:.3f}, {f1_ci[1]:.3f}] (bootstrap)" if f1_ci else ""))
        table.add_row("TP / FP / TN / FN", f"{v['tp']} / {v['fp']} / {v['tn']} / {v['fn']}")
        for name, r in v["pattern_recall"].items():
            table.add_row(f"recall {name}", _cell(r))
        console.print(table)
    table = Table("legitimate", "n", "flagged (step-up counted)", "blocked")
    for name, g in m["legit"].items():
        table.add_row(name, str(g["n"]), _cell(g["flagged"]), _cell(g["blocked"]))
    table.add_row("all unusual", str(m["unusual_blocked"]["n"]), "", _cell(m["unusual_blocked"]))
    console.print(table)
    for view, checks in m["verdicts"].items():
        for check, ok in checks.items():
            console.print(f"{view:16} {check:34} {'[green]PASS[/]' if ok else '[red]FAIL[/]'}")


def run(n: int, seed: int, workdir: Path) -> dict[str, Any]:
    prefix = f"shopfds-bench-accuracy:{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(REDIS_URL)
    env = {"SHOPFDS_DATA_DIR": str(workdir / "data"), "SHOPFDS_TRACE_STORE_DIR": str(workdir / "traces"),
           "SHOPFDS_LOG_DIR": str(workdir / "logs"), "REDIS_URL": REDIS_URL, "SHOPFDS_CACHE_PREFIX": prefix}
    txns = generate(n, 0.05, seed)
    try:
        with ExitStack() as stack:
            ml = stack.enter_context(uvicorn_app("services.ml.main:app", {**env, "SHOPFDS_TRAIN_ON_START": "false"},
                                                 workdir / "out" / "ml.log"))
            model = train_default(ml)
            fds = stack.enter_context(uvicorn_app("services.fds.main:app", {**env, "SHOPFDS_ML_URL": ml},
                                                  workdir / "out" / "fds.log"))
            err.print(f"ml {ml}, fds {fds}: evaluating {n} held-out transactions (seed {seed})")
            started = time.perf_counter()
            decisions = evaluate(fds, txns, WindowFeeder(client, prefix))
            seconds = time.perf_counter() - started
    finally:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for at in range(0, len(keys), 1000):
            client.delete(*keys[at:at + 1000])
        client.close()
    return {"transactions": n, "seed": seed, "training_seed": TRAINING_SEED, "seconds": seconds,
            "targets": TARGETS, "model": model, "metrics": measure(txns, decisions)}


def train_default(ml: str) -> dict[str, Any]:
    """Train and deploy the default model (what the ML service does at first start), over HTTP."""
    body = {"samples": 20_000, "fraud_rate": 0.05, "seed": TRAINING_SEED, "deploy": True}
    response = httpx.post(f"{ml}/v1/ml/train", json=body, timeout=300,
                          headers=service_headers(DEFAULT_JWT_SECRET, "bench-accuracy"))
    response.raise_for_status()
    info: dict[str, Any] = response.json()
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=12_000)
    parser.add_argument("--seed", type=int, default=HOLDOUT_SEED)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.seed == 7:
        parser.error("seed 7 is the training seed: a held-out set needs another one")
    with tempfile.TemporaryDirectory(prefix="shopfds-accuracy-") as tmp:
        results = run(args.transactions, args.seed, Path(tmp))
    show(results, Console())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
