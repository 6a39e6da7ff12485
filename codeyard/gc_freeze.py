"""What start-up made, kept out of the cyclic garbage collector's full collections (issue 15).

A full collection walks every container object the process holds, on the event loop. Once a
server has imported its modules, loaded its routers and started its background features, most
of those objects are the modules, classes, pydantic schemas and routes it keeps for its whole
life: a full collection then took 150-190 ms while 1,000 runs started (bench/runs_scale.py), the
event loop's longest stall, and every live stream's event waited behind it. So ``codeyard
serve`` collects once when its start-up work is over and moves what survives to the permanent
generation (``gc.freeze``), which collections skip; later objects are collected as before.

What a full collection still walks is what the live runs hold (~400 objects each for a
scripted run: tasks, coroutines, cells): 40-130 ms of CPU with 300-1,000 runs live, every ~30 s
while they ran. So full collections also come ten times more rarely (:data:`FULL_EVERY`: after
100 collections of the middle generation, not 10; CPython's own rule still waits until a
quarter more objects reached the oldest generation since the last one): in 300 runs created at
once, 4 full collections became none, and the server's peak RSS moved by 3 MB.

Only the server's own process does this (``create_app(freeze_start_up=True)``): a process that
builds and drops apps (the test suite) would keep each one's objects for ever.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

#: Collections of the middle generation between two full collections (CPython's default: 10).
FULL_EVERY = 100


async def freeze_after(loading: asyncio.Future[Any], started: asyncio.Event) -> None:
    """Once ``loading`` is over (the routers' warm-up: its failures are its own to report) and
    ``started`` is set (the background features), collect what start-up left as garbage and
    freeze the rest."""
    await asyncio.wait([loading])
    await started.wait()
    began = time.perf_counter()
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_EVERY)
    log.debug(
        "froze %d objects made by start-up (%.0f ms)",
        gc.get_freeze_count(),
        (time.perf_counter() - began) * 1000,
    )
