"""Each run leases a block of ports; its agent, scripts and terminals get them as ``PORT`` and
``CODEYARD_PORT_0..n``, so parallel worktrees never fight over port 3000.

Leases are rows (unique base port), allocated inside the serialized writer, so two runs
starting at once cannot take the same block. A block in which something already listens is
skipped. The lease ends when the run's worktree is removed (landing, discard, retention).

Every lease taken or ended is announced (``store.wakeups``, topic ``port_leases``): the port
watcher keeps the leases in memory and reads them again only then.
"""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, literal, select, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from codeyard.domain.errors import Conflict
from codeyard.domain.events import utc_now
from codeyard.store import schema, wakeups
from codeyard.store.statement import Reader, Statement
from codeyard.store.writer import Tx, Writer

L = schema.port_leases

#: Ports handed out: blocks of ``BLOCK`` from ``FIRST_PORT`` (below the kernel's ephemeral range
#: that starts at 32768 by default, so outgoing connections never sit inside a lease).
FIRST_PORT = 20000
BLOCK = 10
BLOCKS = 1000


@dataclass(frozen=True, slots=True)
class Lease:
    run_id: str
    base_port: int
    size: int

    @property
    def ports(self) -> range:
        return range(self.base_port, self.base_port + self.size)

    def env(self) -> dict[str, str]:
        """``PORT`` is the first port; ``CODEYARD_PORT_<i>`` each port of the block."""
        out = {"PORT": str(self.base_port)}
        out.update({f"CODEYARD_PORT_{i}": str(p) for i, p in enumerate(self.ports)})
        return out

    def public(self) -> dict[str, Any]:
        return {"base_port": self.base_port, "size": self.size, "ports": list(self.ports)}


def _lease(row: Any) -> Lease:
    return Lease(row.run_id, row.base_port, row.size)


def _block_free(base: int, size: int) -> bool:
    """Nothing listens on any port of the block (checked by binding, the only honest test)."""
    for port in range(base, base + size):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


#: Allocations retried when another process took the same block at the same moment.
_ALLOCATE_TRIES = 5
#: Free blocks the database proposes per allocation before every lease is read.
_CANDIDATES = 8


#: A run's lease, and a new one: once per run (``store.statement``).
_OF_RUN: Statement[tuple[str, int, int]] = Statement(
    select(L.c.run_id, L.c.base_port, L.c.size).where(L.c.run_id == bindparam("run_id"))
)
_ALL: Statement[tuple[str, int, int]] = Statement(select(L.c.run_id, L.c.base_port, L.c.size))
_INSERT: Statement[tuple[()]] = Statement(
    L.insert().values({c: bindparam(c) for c in ("run_id", "base_port", "size", "created_at")})
)


@functools.cache
def _candidates_statement() -> Statement[tuple[int]]:
    """The constant query of :func:`_candidates`, built once (building it cost more CPU than
    running it, for every new run): the first block if it is not leased, and the block right
    after each leased one, lowest first, in one statement."""
    after = L.c.base_port + BLOCK
    taken = L.alias("taken")
    gaps = (
        select(after.label("base"))
        .where(after < FIRST_PORT + BLOCKS * BLOCK)
        .where(~select(taken.c.base_port).where(taken.c.base_port == after).exists())
        .order_by(after)
        .limit(_CANDIDATES)
    ).subquery()
    first = select(literal(FIRST_PORT).label("base")).where(
        ~select(L.c.base_port).where(L.c.base_port == FIRST_PORT).exists()
    )
    both = union_all(first, select(gaps.c.base)).subquery()
    return Statement(select(both.c.base).order_by(both.c.base))


async def _candidates(conn: AsyncConnection) -> list[int]:
    """Unleased blocks, lowest first: the first block, then the block right after each leased
    one (where a gap begins), found through the unique index on ``base_port`` instead of
    reading every lease (a thousand at scale) inside the writer for each new run."""
    return [int(r[0]) for r in await _candidates_statement().rows(conn)]


async def find(conn: AsyncConnection, run_id: str) -> Lease | None:
    row = await _OF_RUN.first(conn, run_id=run_id)
    return Lease(*row) if row else None


async def owner_of_port(conn: AsyncConnection, port: int) -> Lease | None:
    """The lease whose block holds ``port``."""
    q = select(L).where(L.c.base_port <= port).order_by(L.c.base_port.desc()).limit(1)
    row = (await conn.execute(q)).first()
    lease = _lease(row) if row else None
    return lease if lease is not None and port in lease.ports else None


async def all_leases(conn: Reader) -> list[Lease]:
    """Every lease (the port watcher's read: one statement, so the engine will do)."""
    return [Lease(*row) for row in await _ALL.rows(conn)]


async def _allocate(tx: Tx, run_id: str) -> Lease:
    for base in await _candidates(tx.conn):
        if _block_free(base, BLOCK):
            return await _insert(tx, run_id, base)
    # Each proposed block is busy (something listens in it): look at every block.
    used = {r.base_port for r in (await tx.conn.execute(select(L.c.base_port))).all()}
    for i in range(BLOCKS):
        base = FIRST_PORT + i * BLOCK
        if base in used or not _block_free(base, BLOCK):
            continue
        return await _insert(tx, run_id, base)
    raise Conflict(
        f"Every preview port block ({FIRST_PORT} to {FIRST_PORT + BLOCKS * BLOCK - 1}) is leased "
        "or busy; land or discard finished runs to free theirs."
    )


async def _insert(tx: Tx, run_id: str, base: int) -> Lease:
    await _INSERT.run(tx.conn, run_id=run_id, base_port=base, size=BLOCK, created_at=utc_now())
    await wakeups.announce(tx.conn, wakeups.PORT_LEASES)
    return Lease(run_id, base, BLOCK)


async def ensure(writer: Writer, run_id: str) -> Lease:
    """The run's lease, allocated on first use.

    Several processes may allocate at once (worker hosts on one database, issue 16): a block
    another one took meanwhile fails the insert (unique base port) and is skipped next time."""
    taken: list[AsyncEngine] = []

    async def allocate(tx: Tx) -> Lease:
        row = await _OF_RUN.first(tx.conn, run_id=run_id)
        if row is not None:
            return Lease(*row)
        taken.append(tx.conn.engine)
        return await _allocate(tx, run_id)

    for attempt in range(_ALLOCATE_TRIES):
        try:
            lease = await writer.run(allocate)
        except IntegrityError:
            if attempt == _ALLOCATE_TRIES - 1:
                raise
        else:
            if taken:  # a new lease, committed
                wakeups.wake(taken[-1], wakeups.PORT_LEASES)
            return lease
    raise AssertionError("unreachable")


async def release(tx: Tx, run_id: str) -> None:
    """End the run's lease, in the caller's transaction. This process's port watcher is woken
    now, before the commit (the caller commits; it reads the leases again a second later too)."""
    ended = await tx.conn.execute(delete(L).where(L.c.run_id == run_id))
    if ended.rowcount:
        await wakeups.announce(tx.conn, wakeups.PORT_LEASES)
        wakeups.wake(tx.conn.engine, wakeups.PORT_LEASES)
