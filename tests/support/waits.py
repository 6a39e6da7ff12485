"""Waiting on a condition instead of sleeping a fixed time (a fixed sleep is either too short on
a loaded machine or proves nothing on an idle one)."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = 30.0, interval: float = 0.05
) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return True
        if time.monotonic() >= deadline:
            return False
        await anyio.sleep(interval)


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line contains ``text`` (pid, command line), zombies left out.

    Read from the host's ``/proc``, so processes inside a sandbox's pid namespace count too.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if text in cmd and stat[stat.rfind(")") + 2] != "Z":
            found.append((int(entry.name), cmd))
    return found


def scrollback_saved(terminals: Path, needle: bytes) -> bool:
    """Whether a terminal's saved scrollback (``<data_dir>/terminals``) holds ``needle``, with
    the offsets file that describes it: what a restarted server replays."""
    for tail in terminals.glob("*.tail"):
        try:
            data = tail.read_bytes()
            meta = json.loads(tail.with_suffix(".json").read_text())
        except (OSError, ValueError):
            continue
        if needle in data and meta["end"] - meta["start"] == len(data):
            return True
    return False
