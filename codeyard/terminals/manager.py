"""Every terminal of this server: start, find, persist scrollback, close idle ones.

Scrollback is a file per terminal under ``<data>/terminals`` (the tail of the output log and
the offsets it covers, rewritten atomically a few times a second while output flows), so a
restart — even ``kill -9`` — keeps what viewers saw. The database row tracks status; a row
still ``live`` at start-up belonged to a server that is gone, and so is its program.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.domain.errors import NotFound
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.store import terminals as store
from codeyard.store.writer import Writer
from codeyard.terminals.buffer import RingBuffer
from codeyard.terminals.modes import ModeTracker
from codeyard.terminals.pty_process import PtyProcess
from codeyard.terminals.session import Terminal, TerminalInfo

log = logging.getLogger(__name__)

LOST = "The server restarted; the program is gone (its scrollback is kept)."
FLUSH_SECONDS = 0.25


class TerminalManager:
    def __init__(
        self,
        engine: AsyncEngine,
        writer: Writer,
        root: Path,
        *,
        capacity: int = 2 * 1024 * 1024,
        persist_bytes: int = 512 * 1024,
        idle_seconds: float = 30 * 60,
    ) -> None:
        self._engine = engine
        self._writer = writer
        self.root = root
        self.capacity = capacity
        self.persist_bytes = min(persist_bytes, capacity)
        self.idle_seconds = idle_seconds
        self._live: dict[str, Terminal] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._saving = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._opening: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def opening(self, run_id: str) -> asyncio.Lock:
        """The lock a run's look-or-open of its shell holds: two first attaches at once (two
        tabs) share one shell instead of each opening its own. An entry lives while someone
        holds or awaits its lock."""
        lock = self._opening.get(run_id)
        if lock is None:
            lock = self._opening[run_id] = asyncio.Lock()
        return lock

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        now = utc_now()
        await self._writer.run(lambda tx: store.mark_lost(tx, LOST, now))
        self._tasks = [
            asyncio.create_task(self._flush_loop(), name="terminal-flush"),
            asyncio.create_task(self._reap_loop(), name="terminal-idle"),
        ]

    async def stop(self) -> None:
        for term in list(self._live.values()):
            if term.process is not None:
                term.process.kill_now()
            term.info.status = "lost"
            term.info.close_reason = LOST
            term.info.closed_at = utc_now()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for term in list(self._live.values()):
            await self._save(term)
        # The rows stay 'live' here on purpose: start-up marks them lost in one statement,
        # which also covers a server that died without reaching this point.

    # --- creating and finding ------------------------------------------------------------------

    async def create(
        self,
        *,
        run_id: str | None,
        created_by: str | None,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        cols: int,
        rows: int,
        take_ctty: bool = True,
        shown: list[str] | None = None,
    ) -> Terminal:
        """Start ``argv``; ``shown`` is the command as the user asked for it (``argv`` may be
        wrapped in a sandbox)."""
        info = TerminalInfo(
            id=new_id("term"),
            run_id=run_id,
            created_by=created_by,
            cwd=str(cwd),
            command=shown or argv,
            cols=cols,
            rows=rows,
            status="live",
            created_at=utc_now(),
        )
        term = Terminal(info, RingBuffer(self.capacity), ModeTracker(), self._changed)
        row = {
            "id": info.id,
            "run_id": run_id,
            "created_by": created_by,
            "cwd": info.cwd,
            "command": info.command,
            "cols": cols,
            "rows": rows,
            "status": "live",
            "end_offset": 0,
            "created_at": info.created_at,
        }
        # Start first: a program that cannot start leaves no 'live' row behind.
        process = PtyProcess(
            argv, cwd, env, cols, rows, term.output, term.process_exited, take_ctty=take_ctty
        )
        term.attach_process(process)
        try:
            await self._writer.run(lambda tx: store.insert(tx, row))
        except BaseException:
            process.kill_now()
            raise
        self._live[info.id] = term
        self._changed(term)  # output (or an exit) that came before it was listed
        return term

    async def get(self, terminal_id: str) -> Terminal:
        """A live terminal, or a closed one rebuilt from its row and scrollback file."""
        term = self._live.get(terminal_id)
        if term is not None:
            return term
        async with self._engine.connect() as conn:
            row = await store.find(conn, terminal_id)
        if row is None:
            raise NotFound(f"No terminal '{terminal_id}'. List terminals with GET /api/terminals.")
        return await asyncio.to_thread(self._load, row)

    def _load(self, row: dict[str, Any]) -> Terminal:
        fields = {k: row[k] for k in TerminalInfo.__dataclass_fields__}
        info = TerminalInfo(**fields)
        start, tail, modes = 0, b"", {}
        with contextlib.suppress(OSError, ValueError):
            meta = json.loads((self.root / f"{info.id}.json").read_text())
            tail = (self.root / f"{info.id}.tail").read_bytes()
            start = int(meta["start"])
            modes = {int(k): bool(v) for k, v in meta.get("modes", {}).items()}
            if start + len(tail) != int(meta["end"]):
                tail, start = b"", int(meta["end"])  # a torn pair of files: keep offsets honest
        term = Terminal(
            info,
            RingBuffer(self.capacity, start=start, initial=tail),
            ModeTracker(modes),
            lambda _t: None,
        )
        term.exited.set()  # no program behind it any more
        return term

    def live_ids(self) -> set[str]:
        return set(self._live)

    async def listing(self, **filters: Any) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            rows = await store.listing(conn, **filters)
        out = []
        for row in rows:
            live = self._live.get(row["id"])
            out.append(live.snapshot() if live is not None else {**row, "viewers": 0})
        return out

    # --- closing -----------------------------------------------------------------------------

    async def close(self, terminal_id: str, reason: str) -> Terminal:
        term = await self.get(terminal_id)
        if term.info.status == "live":
            term.info.status = "closed"
            term.info.close_reason = reason
        if term.process is not None:
            await term.process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(term.exited.wait(), 5)
        await self._finish(term)
        return term

    async def close_for_run(self, run_id: str, reason: str) -> int:
        mine = [t for t in self._live.values() if t.info.run_id == run_id]
        for term in mine:
            await self.close(term.info.id, reason)
        return len(mine)

    async def _finish(self, term: Terminal) -> None:
        """A terminal whose program ended: final scrollback and row, then forget it."""
        if self._live.pop(term.info.id, None) is None:
            return
        term.info.closed_at = term.info.closed_at or utc_now()
        await self._save(term)
        values = {
            "status": term.info.status,
            "exit_code": term.info.exit_code,
            "close_reason": term.info.close_reason,
            "closed_at": term.info.closed_at,
            "end_offset": term.log.end,
            "cols": term.info.cols,
            "rows": term.info.rows,
        }
        await self._writer.run(lambda tx: store.save(tx, term.info.id, values))

    # --- persistence and idleness ------------------------------------------------------------

    def _changed(self, term: Terminal) -> None:
        self._dirty.add(term.info.id)
        self._wake.set()

    def _tail(self, term: Terminal) -> tuple[int, int, bytes, dict[int, bool]]:
        replay = term.log.since(max(term.log.start, term.log.end - self.persist_bytes))
        return replay.start, replay.end, replay.data, dict(term.modes.modes)

    async def _save(self, term: Terminal) -> None:
        """One writer at a time: the flush loop and a closing terminal may both save it."""
        async with self._saving:
            await asyncio.to_thread(self._persist, term.info.id, *self._tail(term))

    def _persist(
        self, terminal_id: str, start: int, end: int, tail: bytes, modes: dict[int, bool]
    ) -> None:
        """Tail first, then the offsets that describe it (each by an atomic rename)."""
        for name, data in (
            (f"{terminal_id}.tail", tail),
            (
                f"{terminal_id}.json",
                json.dumps({"start": start, "end": end, "modes": modes}).encode(),
            ),
        ):
            path = self.root / name
            tmp = path.with_suffix(path.suffix + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            for terminal_id in dirty:
                term = self._live.get(terminal_id)
                if term is None:
                    continue
                try:
                    await self._save(term)
                except OSError as exc:
                    log.warning("terminal %s: scrollback not saved: %s", terminal_id, exc)
                if term.exited.is_set():
                    await self._finish(term)
            await asyncio.sleep(FLUSH_SECONDS)

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(max(0.05, min(30.0, self.idle_seconds / 4)))
            now = time.monotonic()
            for term in list(self._live.values()):
                idle = now - term.last_activity
                if not term.viewers and idle >= self.idle_seconds:
                    reason = f"closed after {self.idle_seconds:g} s without viewers or output"
                    try:
                        await self.close(term.info.id, reason)
                    except Exception:  # one bad terminal must not stop the reaper
                        log.exception("terminal %s: idle close failed", term.info.id)
