"""Stopping a background loop for sure.

Every service runs loops beside its requests (the fault follower, the reconciler, the model and
gauge refreshers), each catching ``Exception`` so that one bad round does not end it. Such a loop
can outlive one ``cancel()``: when the cancel lands just as a library call it is inside finishes
or times out (Python 3.11's ``asyncio.wait_for``, which asyncpg wraps its calls in, is known to lose
a cancel that races the inner call's end), the loop sees a normal result or a ``TimeoutError``,
goes round again, and ``await task`` waits for ever: a shutdown that hangs. ``stop`` cancels again
until the task has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger("services.tasks")

RETRY_SECONDS = 0.5


async def stop(task: asyncio.Task[object]) -> None:
    """Cancel ``task`` and wait for it to end, cancelling again every ``RETRY_SECONDS`` it runs on."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RETRY_SECONDS)
        if not task.done():
            log.debug("task %s survived a cancel; cancelling again", task.get_name())
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
