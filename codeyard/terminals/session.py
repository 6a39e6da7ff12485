"""One terminal: its process (while it lives), its output log, modes, screen and viewers.

The PTY outlives sockets: viewers come and go, each with its own bounded queue. A viewer that
falls too far behind is dropped (it reconnects with ``since=`` and loses nothing), so a slow
phone never slows the program or the other viewers.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from codeyard.terminals.buffer import Replay, RingBuffer
from codeyard.terminals.modes import ModeTracker
from codeyard.terminals.pty_process import PtyProcess
from codeyard.terminals.screen import ScreenModel

#: Bytes a viewer may have queued before it is dropped (it then resumes with ``since=``).
VIEWER_BACKLOG = 8 * 1024 * 1024
_ids = itertools.count(1)


@dataclass(eq=False)
class Viewer:
    """One attached socket. ``None`` in the queue means: stop (exit or dropped)."""

    owner: bool
    read_only: bool
    cols: int | None = None
    rows: int | None = None
    queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    backlog: int = 0
    dropped: bool = False
    id: int = field(default_factory=lambda: next(_ids))


@dataclass
class TerminalInfo:
    """What the store keeps about a terminal (the row)."""

    id: str
    run_id: str | None
    created_by: str | None
    cwd: str
    command: list[str]
    cols: int
    rows: int
    status: str
    created_at: str
    exit_code: int | None = None
    close_reason: str | None = None
    closed_at: str | None = None


class Terminal:
    def __init__(
        self,
        info: TerminalInfo,
        log: RingBuffer,
        modes: ModeTracker,
        on_change: Callable[[Terminal], None],
    ) -> None:
        self.info = info
        self.log = log
        self.modes = modes
        self.screen = ScreenModel(info.cols, info.rows)
        self.viewers: dict[int, Viewer] = {}
        self.process: PtyProcess | None = None
        self.last_activity = time.monotonic()
        self.exited = asyncio.Event()
        self._on_change = on_change

    # --- the process -------------------------------------------------------------------------

    def attach_process(self, process: PtyProcess) -> None:
        self.process = process

    @property
    def live(self) -> bool:
        return self.process is not None and self.process.alive

    def output(self, data: bytes) -> None:
        """Called by the PTY reader: log first, then fan out (the log is the truth)."""
        self.log.write(data)
        self.modes.feed(data)
        self.last_activity = time.monotonic()
        for viewer in list(self.viewers.values()):
            if viewer.dropped:
                continue
            viewer.backlog += len(data)
            if viewer.backlog > VIEWER_BACKLOG:
                viewer.dropped = True
                viewer.queue.put_nowait(None)
            else:
                viewer.queue.put_nowait(data)
        self._on_change(self)

    def process_exited(self, code: int | None) -> None:
        self.info.exit_code = code
        if self.info.status == "live":
            self.info.status = "exited"
            self.info.close_reason = f"the program exited with code {code}"
        self.exited.set()
        for viewer in self.viewers.values():
            viewer.queue.put_nowait(None)
        self._on_change(self)

    def write(self, data: bytes) -> None:
        if self.process is None or not self.process.alive:
            raise ProcessLookupError
        self.last_activity = time.monotonic()
        self.process.write(data)

    def paste(self, text: str) -> bytes:
        """Text as a bracketed paste, which a shell inserts without running it.

        Control characters are removed (an ESC could end the paste, a CR would press Enter);
        without bracketed paste mode the text is joined onto one line for the same reason.
        """
        clean = "".join(ch for ch in text if ch >= " " or ch == "\n").replace("\x7f", "")
        if not self.modes.bracketed_paste:
            return " ".join(clean.splitlines()).encode()
        return b"\x1b[200~" + clean.encode() + b"\x1b[201~"

    # --- viewers and size ----------------------------------------------------------------------

    def attach(self, owner: bool, read_only: bool) -> Viewer:
        viewer = Viewer(owner=owner, read_only=read_only)
        self.viewers[viewer.id] = viewer
        self.last_activity = time.monotonic()
        return viewer

    def detach(self, viewer: Viewer) -> None:
        self.viewers.pop(viewer.id, None)
        self.last_activity = time.monotonic()
        self._apply_size()

    def replay(self, since: int | None) -> tuple[Replay, bytes]:
        """Missed output, and the mode sequences to send first when the log had been cut."""
        replay = self.log.since(since)
        prefix = self.modes.restore_sequence() if (since is None or replay.gap) else b""
        return replay, prefix

    def viewer_size(self, viewer: Viewer, cols: int, rows: int) -> None:
        viewer.cols, viewer.rows = cols, rows
        self._apply_size()

    def _apply_size(self) -> None:
        """The owner's size when the owner watches, else the smallest writable viewer's."""
        sized = [v for v in self.viewers.values() if v.cols and v.rows and not v.read_only]
        owners = [v for v in sized if v.owner]
        if owners:
            cols, rows = owners[-1].cols or 0, owners[-1].rows or 0
        elif sized:
            cols, rows = min(v.cols or 0 for v in sized), min(v.rows or 0 for v in sized)
        else:
            return
        self.resize(cols, rows)

    def resize(self, cols: int, rows: int) -> None:
        if (cols, rows) == (self.info.cols, self.info.rows):
            return
        self.info.cols, self.info.rows = cols, rows
        self.screen.resize(cols, rows)
        if self.process is not None:
            self.process.resize(cols, rows)
        self._on_change(self)

    def snapshot(self) -> dict[str, Any]:
        """The public view of the terminal (the API's shape)."""
        i = self.info
        return {
            "id": i.id,
            "run_id": i.run_id,
            "created_by": i.created_by,
            "cwd": i.cwd,
            "command": i.command,
            "cols": i.cols,
            "rows": i.rows,
            "status": i.status,
            "exit_code": i.exit_code,
            "close_reason": i.close_reason,
            "created_at": i.created_at,
            "closed_at": i.closed_at,
            "start_offset": self.log.start,
            "end_offset": self.log.end,
            "modes": self.modes.enabled(),
            "viewers": len(self.viewers),
        }
