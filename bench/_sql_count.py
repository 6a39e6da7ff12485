"""Counts a server's SQL statements, and where in Codeyard each was issued (issue 15).

Loaded by ``bench/_timed_server.py`` when ``BENCH_SQL_COUNT_FILE`` is set: every statement
SQLAlchemy sends (``before_cursor_execute``, ``BEGIN`` included) and every ``COMMIT`` and
``ROLLBACK`` is counted under the statement's first words and the Codeyard function that
awaited it (the frames of the coroutine waiting on SQLAlchemy's greenlet; the store's own
helpers are skipped, so the caller is the code that asked). Each second the totals are
appended to the file as one JSON line with the time, so a bench step's share is the
difference of two lines. The SQLite commit thread's batches (``store.sqlite_commit``) bypass
SQLAlchemy and are not counted. Each line also holds the pools' connections (every engine's):
opened, closed, in use and the most in use at once, so a step's churn is the difference of the
opened counts and ``peak_in_use`` says how many a moment needed.
"""

from __future__ import annotations

import atexit
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import greenlet
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

_SKIP = ("/codeyard/store/", "/sqlalchemy/", "/asyncio/", "contextlib.py")


def _caller() -> str:
    """``module:function`` of the first Codeyard frame above the store that awaited this."""
    parent = greenlet.getcurrent().parent
    frame: FrameType | None = parent.gr_frame if parent is not None else sys._getframe(1)
    store = None
    while frame is not None:
        name = frame.f_code.co_filename
        if "/codeyard/" in name:
            where = f"{name.rsplit('/codeyard/', 1)[1]}:{frame.f_code.co_name}"
            if not any(s in name for s in _SKIP):
                return where
            store = store or where
        frame = frame.f_back
    return store or "?"


def _head(statement: str) -> str:
    words = statement.split()
    if not words:
        return "?"
    verb = words[0].upper()
    if verb in ("SELECT", "DELETE") and "FROM" in statement.upper():
        after = statement.upper().split("FROM", 1)[1].split()
        return f"{verb} {after[0].lower() if after else ''}"
    if verb in ("INSERT", "UPDATE") and len(words) > 1:
        target = words[2] if verb == "INSERT" and len(words) > 2 else words[1]
        return f"{verb} {target.lower()}"
    return verb


def install(path: Path) -> None:
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def count(key: str) -> None:
        with lock:
            counts[key] += 1

    def before(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        count(f"{_head(statement)} | {_caller()}")

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "commit", lambda _c: count(f"COMMIT | {_caller()}"))
    event.listen(Engine, "rollback", lambda _c: count(f"ROLLBACK | {_caller()}"))
    pool = {"opened": 0, "closed": 0, "in_use": 0, "peak_in_use": 0}

    def _pool(key: str, step: int = 1) -> Any:
        def listener(*_args: Any) -> None:
            with lock:
                pool[key] += step
                pool["peak_in_use"] = max(pool["peak_in_use"], pool["in_use"])

        return listener

    event.listen(Pool, "connect", _pool("opened"))
    event.listen(Pool, "close", _pool("closed"))
    event.listen(Pool, "checkout", _pool("in_use"))
    event.listen(Pool, "checkin", _pool("in_use", -1))

    def dump() -> None:
        with lock:
            snapshot, pooled = dict(counts), dict(pool)
        line = {
            "t": time.time(),
            "total": sum(snapshot.values()),
            "counts": snapshot,
            "pool": pooled,  # connections opened, closed, in use now and at most (every engine)
        }
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")

    def every_second() -> None:
        while True:
            time.sleep(1.0)
            dump()

    threading.Thread(target=every_second, name="sql-count", daemon=True).start()
    atexit.register(dump)
