"""Port blocks leased to runs (``preview.leases``), on SQLite and PostgreSQL through the writer:
distinct blocks on the grid, a released block given again, a busy block (something listens in
it) skipped, and the database's proposals falling back to reading every lease."""

from __future__ import annotations

import socket

import pytest

from codeyard.preview import leases
from tests.conftest import Api

pytestmark = pytest.mark.anyio


async def test_blocks_are_distinct_reused_after_release_and_busy_ones_skipped(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = api.services.writer
    taken = [await leases.ensure(writer, f"run-{i}") for i in range(12)]
    bases = [lease.base_port for lease in taken]
    assert len(set(bases)) == len(bases)
    assert all((b - leases.FIRST_PORT) % leases.BLOCK == 0 for b in bases)
    assert (await leases.ensure(writer, "run-3")).base_port == bases[3]  # the same, again

    # Released, a block is given again to the next run (when nothing listens in it).
    await writer.run(lambda tx: leases.release(tx, "run-3"))
    again = await leases.ensure(writer, "run-new")
    if leases._block_free(bases[3], leases.BLOCK):
        assert again.base_port == bases[3]
    assert again.base_port not in bases[:3] + bases[4:]

    # A listener in the next proposed block: that block is skipped.
    await writer.run(lambda tx: leases.release(tx, "run-new"))
    first = (await writer.run(lambda tx: leases._candidates(tx.conn)))[0]
    with socket.create_server(("127.0.0.1", first + 2)):
        skipped = await leases.ensure(writer, "run-busy")
    assert skipped.base_port != first and skipped.base_port not in bases

    # Every proposal busy: every block is looked at, and a free one is still found.
    monkeypatch.setattr(leases, "_CANDIDATES", 1)
    await writer.run(lambda tx: leases.release(tx, "run-busy"))
    first = (await writer.run(lambda tx: leases._candidates(tx.conn)))[0]
    with socket.create_server(("127.0.0.1", first)):
        fallback = await leases.ensure(writer, "run-fallback")
    assert fallback.base_port != first and fallback.base_port not in bases
