"""One asyncio lock per work queue: the one door to the state ``queues`` and ``queue_driver``
share.

The follower and the routes both advance a queue, and a run can settle before ``advance``
has recorded it as the item's run; so advancing, settling a run, cancelling and settling an
item each hold the queue's lock while they read the queue's row and write what they decided.
Both modules take it here, so there is one table of locks, not one per module (two tables
would each let their holder run beside the other's). They order this process's callers only.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)


def lock(queue_id: str) -> asyncio.Lock:
    """The lock of ``queue_id`` (made on first use)."""
    return _locks[queue_id]
