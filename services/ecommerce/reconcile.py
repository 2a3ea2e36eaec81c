"""The reconciler: settles every order and payment a failure left ``pending``.

A checkout is four transactions (``checkout.py``); a database outage or a crash between them
leaves an order that nothing moves on: no verdict written, approved but never paid, or a
payment row ``pending`` whose charge the gateway answered after the connection was gone. Once
such an order is older than ``SHOPFDS_RECONCILE_AFTER_SECONDS`` (far beyond any checkout's own
time), the reconciler settles it:

- **no verdict**: the FDS is asked again with the same transaction id (derived from the order)
  and the retry header (the FDS answers its first verdict from its table, it does not evaluate
  twice, even after Redis lost its replay markers), and the verdict is applied as a
  checkout would (approve: paid; block: cancelled; hold: staff review);
- **approved, no payment row**: paid now (``Shop.pay``; the payment row's unique order_id and the
  gateway's idempotency key make a racing retry charge once);
- **payment row pending**: the charge is looked up at the gateway by the row's ``gateway_key``:
  approved: the order goes to ``processing``; declined: cancelled ``payment_failed``; unknown (the
  process stopped before charging): charged now with that key;
- **waiting for a verification nobody sent**: moved to the staff review list.

Every order ends in a terminal state or in the staff review list (``pending`` with next action
``review``: staff approve or block it with ``POST /v1/orders/{id}/review``). Each one settled
counts in ``ecommerce_orders_reconciled_total{step, outcome}`` (alert *Orders Reconciled*) and
logs a warning.

It is an in-process periodic task of ecommerce, every ``SHOPFDS_RECONCILE_INTERVAL_SECONDS``
(``SHOPFDS_RECONCILE`` false turns it off). Of several workers or replicas on one PostgreSQL
database, one runs each round: the others find its advisory lock taken and skip. Every move is
a compare-and-set, so even two rounds at once settle an order once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, text, update

from services.common.db import Database
from services.common.tasks import stop

from . import orders
from .checkout import Shop, _transaction
from .models import Order, Payment, User

log = logging.getLogger("services.ecommerce.reconcile")
LOCK_KEY = 0x5F5D_EC01  # pg_try_advisory_lock key of the reconciler
STARTING_SERIES = (("verdict", "processing"), ("verdict", "cancelled"), ("verdict", "review"),
                   ("payment_row", "processing"), ("payment_row", "cancelled"),
                   ("payment_result", "processing"), ("payment_result", "cancelled"), ("verify", "review"))
BATCH = 200  # orders settled per round at most: a backlog is worked off over several rounds


class Reconciler:
    def __init__(self, db: Database, shop: Shop, instruments: Any, after_seconds: float,
                 interval_seconds: float) -> None:
        self.db = db
        self.shop = shop
        self.counter = instruments["ecommerce_orders_reconciled_total"]
        for step, outcome in STARTING_SERIES:  # at 0 from the start: the alert's increase() sees the first one
            self.counter.add(0, {"step": step, "outcome": outcome})
        self.after = timedelta(seconds=after_seconds)
        self.interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def run_once(self, now: datetime | None = None) -> dict[str, str]:
        """Settle what is stuck now; ``{order_id: outcome}`` of this round ({} if another ran it)."""
        cutoff = (now or datetime.now(UTC)) - self.after
        async with self._lock() as held:
            if not held:
                return {}
            async with self.db.sessions() as session:
                stuck = list((await session.execute(
                    select(Order.id).where(Order.status == "pending", Order.created_at < cutoff,
                                           or_(Order.next_action.is_(None), Order.next_action != "review"))
                    .order_by(Order.created_at).limit(BATCH))).scalars())
            settled = {}
            for order_id in stuck:
                async with self.db.sessions() as session:
                    step, outcome = await self._settle(session, await orders.load(session, order_id))
                if outcome:
                    settled[order_id] = outcome
                    self.counter.add(1, {"step": step, "outcome": outcome})
                    log.warning("order %s reconciled at step %s: %s", order_id, step, outcome)
            return settled

    async def _settle(self, session: Any, order: Order) -> tuple[str, str]:
        payment = order.payment
        if order.next_action == "verify":
            moved = await orders.move(session, order.id, ("pending",), when_action="verify", next_action="review")
            return "verify", "review" if moved else ""
        if order.fds is None:
            user = await session.get(User, order.user_id)
            verdict = await self.shop.fds.evaluate(_transaction(order, user), retry=True)
            if verdict["decision"] == "additional_auth":  # nobody is there to verify: staff decide
                verdict = {**verdict, "decision": "hold"}
            return "verdict", _outcome(await self.shop._apply(session, order, verdict))
        if payment is None:
            return "payment_row", _outcome(await self.shop.pay(session, order.id))
        if payment.status == "pending":
            return "payment_result", await self._settle_payment(session, order, payment)
        return "payment_result", ""  # settled meanwhile by a retry: nothing to do

    async def _settle_payment(self, session: Any, order: Order, payment: Payment) -> str:
        gateway = self.shop.gateway
        approved = await gateway.lookup(payment.gateway_key)
        if approved is None:  # the gateway never saw it: charge now, under the same key
            approved = await gateway.charge(order.total_amount, order.payment_method, order.card_bin,
                                            order.card_last4, key=payment.gateway_key)
            self.shop.metrics.payment("succeeded" if approved else "failed", payment.method, payment.amount)
        status = "succeeded" if approved else "failed"
        await session.execute(update(Payment).where(Payment.id == payment.id, Payment.status == "pending")
                              .values(status=status))
        if not approved:
            await session.commit()
            return _outcome(await self.shop.cancel(session, order, "payment_failed", statuses=("pending",)))
        if await orders.move(session, order.id, ("pending",), status="processing", next_action=None):
            self.shop.metrics.order_status("processing")
        return _outcome(await orders.load(session, order.id))

    @contextlib.asynccontextmanager
    async def _lock(self) -> Any:
        """One round at a time across processes: a session advisory lock on PostgreSQL (released
        with its connection if the process dies); SQLite is one process's own file."""
        if self.db.is_sqlite:
            yield True
            return
        async with self.db.engine.connect() as conn:
            held = bool(await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}))
            await conn.commit()
            try:
                yield held
            finally:
                if held:
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                    await conn.commit()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_once()
            except Exception as exc:  # the database may be down too: the next round tries again
                log.warning("reconciliation round failed (%s); next in %.0fs", type(exc).__name__, self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ecommerce-reconciler")

    async def close(self) -> None:
        if self._task is not None:
            await stop(self._task)


def _outcome(order: Order) -> str:
    """``processing`` / ``cancelled`` (terminal for the shop's flow) or ``review`` (staff list)."""
    if order.status == "pending":
        return order.next_action or "pending"
    return order.status
