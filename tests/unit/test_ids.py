"""Opaque ids: a prefix and 16 characters of base 36, every character uniformly random."""

from __future__ import annotations

import re

from codeyard.domain.ids import new_id


def test_ids_are_prefixed_base36_and_distinct() -> None:
    ids = [new_id("run") for _ in range(2000)]
    assert all(re.fullmatch(r"run_[0-9a-z]{16}", i) for i in ids), ids[:5]
    assert len(set(ids)) == len(ids)


def test_every_position_takes_every_character() -> None:
    """2,000 ids miss a given character at a given position with probability ~4e-25: a
    position that never varies, or a leading one held below 36 values, shows here."""
    bodies = [new_id("x")[2:] for _ in range(2000)]
    for position in range(16):
        seen = {body[position] for body in bodies}
        assert len(seen) == 36, (position, sorted(seen))
