"""Port blocks leased to runs (``preview.leases``), on SQLite and PostgreSQL through the writer:
distinct blocks on the grid, a released block given again, a busy block (something listens in
it) skipped, and the database's proposals falling back to reading every lease.

Other processes on the machine (parallel tests, other servers) may listen in the grid too: the
test binds its own listeners where the port is free (a port taken by someone else is busy just
the same), and expects the released block back only when the real bind check found every block
it looked at free (a busy block the database does not lease hides the gap after it)."""

from __future__ import annotations

import contextlib
import functools
import socket

import pytest

from codeyard.preview import leases
from tests.conftest import Api
from tests.support.sql import statements

pytestmark = pytest.mark.anyio


def _listen(port: int) -> contextlib.AbstractContextManager[object]:
    """A listener on ``port``, or nothing if another process already listens there."""
    try:
        return socket.create_server(("127.0.0.1", port))
    except OSError:
        return contextlib.nullcontext()


async def test_blocks_are_distinct_reused_after_release_and_busy_ones_skipped(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = leases._block_free
    busy: list[int] = []  # blocks the real bind check found in use

    def block_free(base: int, size: int) -> bool:
        free = real(base, size)
        if not free:
            busy.append(base)
        return free

    monkeypatch.setattr(leases, "_block_free", block_free)
    writer = api.services.writer
    taken = [await leases.ensure(writer, f"run-{i}") for i in range(12)]
    bases = [lease.base_port for lease in taken]
    assert len(set(bases)) == len(bases)
    assert all((b - leases.FIRST_PORT) % leases.BLOCK == 0 for b in bases)
    assert set(bases).isdisjoint(busy)
    assert (await leases.ensure(writer, "run-3")).base_port == bases[3]  # the same, again

    # Released, a block is given again to the next run (when nothing listens in it).
    await writer.run(lambda tx: leases.release(tx, "run-3"))
    again = await leases.ensure(writer, "run-new")
    if not busy:
        assert again.base_port == bases[3]
    leased = bases[:3] + bases[4:]
    assert again.base_port not in leased and again.base_port not in busy

    # A listener in the next proposed block: that block is skipped.
    await writer.run(lambda tx: leases.release(tx, "run-new"))
    first = (await writer.run(lambda tx: leases._candidates(tx.conn)))[0]
    with _listen(first + 2):
        skipped = await leases.ensure(writer, "run-busy")
    assert skipped.base_port != first and skipped.base_port not in leased

    # Every proposal busy: every block is looked at, and a free one is still found.
    monkeypatch.setattr(leases, "_CANDIDATES", 1)  # the statement built anew, with it
    fresh = functools.cache(leases._candidates_statement.__wrapped__)
    monkeypatch.setattr(leases, "_candidates_statement", fresh)
    await writer.run(lambda tx: leases.release(tx, "run-busy"))
    first = (await writer.run(lambda tx: leases._candidates(tx.conn)))[0]
    with _listen(first):
        fallback = await leases.ensure(writer, "run-fallback")
    assert fallback.base_port != first and fallback.base_port not in leased


async def test_a_new_lease_is_found_in_one_read(api: Api) -> None:
    """The run's lease, then the free blocks proposed (the first block, or the one after a
    leased block) in one statement (issue 15: it was two), then the insert."""
    writer = api.services.writer
    for i in range(3):
        await leases.ensure(writer, f"run-{i}")

    def allocating(sql: str) -> bool:  # (not the port watcher's read of every lease)
        return "port_leases" in sql and not sql.rstrip().endswith("FROM port_leases")

    with statements(api.services.engine, allocating) as sent:
        await leases.ensure(writer, "run-next")
    reads = [sql for sql in sent if sql.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 2, reads
    assert len(sent) == 3, sent  # and the insert
