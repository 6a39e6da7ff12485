"""Process groups a dead server left running: found from their records and stopped at start-up.

Apart from ``agents.process_group`` because only restart recovery (``executor.recovery``) uses
it, and it works from records alone, one scan of ``/proc`` for every group, where a live
:class:`~codeyard.agents.process_group.ProcessGroup` follows one group it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterable

from codeyard.agents.process_group import GroupRecord, boot_id
from codeyard.agents.process_tree import Stat
from codeyard.agents.process_tree import alive as _alive
from codeyard.agents.process_tree import all_stats as _all_stats

__all__ = ["still_running", "stop_leftovers"]

log = logging.getLogger(__name__)


def _leftovers(record: GroupRecord, stats: dict[int, Stat]) -> set[int]:
    """Live processes of a recorded group: in the group and started no earlier than its
    leader (a group id cannot be reused while any member lives); nothing when the group's id
    now belongs to a newer process."""
    if record.boot_id != boot_id():
        return set()
    leader = stats.get(record.pgid)
    if leader is not None and leader[3] != record.start_ticks:
        return set()  # the id now leads another process: the recorded group is long gone
    found = set()
    for pid, (state, _ppid, pgid, start) in stats.items():
        if state in ("Z", "X"):
            continue
        if pgid == record.pgid and start >= record.start_ticks:
            found.add(pid)
    return found


def still_running(records: Iterable[GroupRecord]) -> list[GroupRecord]:
    """The recorded groups that still have a live member."""
    stats = _all_stats()
    return [r for r in records if _leftovers(r, stats)]


async def stop_leftovers(records: Iterable[GroupRecord], timeout: float = 2.0) -> list[int]:
    """SIGKILL every live process of groups a dead server recorded, wait until they are gone
    (up to ``timeout``), and return their pids. A process that left its group (``setsid``) and
    outlived its parent cannot be told from a stranger and is not touched; the sandbox's
    ``--die-with-parent`` and the pid namespace cover those."""
    stats = _all_stats()
    victims: set[int] = set()
    for record in records:
        found = _leftovers(record, stats)
        if found:
            log.warning(
                "run process group %d (%s) outlived the last server: killing %s",
                record.pgid,
                record.kind,
                sorted(found),
            )
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record.pgid, signal.SIGKILL)
            for pid in found:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            victims |= found
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for _ in range(int(timeout / 0.02) + 1):
        if not any(_alive(p) for p in victims) or loop.time() >= deadline:
            break
        await asyncio.sleep(0.02)
    return sorted(victims)
