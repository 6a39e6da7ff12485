"""The terminal output log, mode tracking and named keys (pure, no PTY)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codeyard.domain.errors import BadRequest
from codeyard.terminals import keys
from codeyard.terminals.buffer import RingBuffer
from codeyard.terminals.modes import ModeTracker


@given(st.lists(st.binary(min_size=0, max_size=300), max_size=40), st.integers(0, 6000))
def test_since_replays_exactly_what_followed(chunks: list[bytes], since: int) -> None:
    log = RingBuffer(1000)
    whole = b""
    for chunk in chunks:
        log.write(chunk)
        whole += chunk
    assert log.end == len(whole)
    assert log.end - log.start >= min(len(whole), 1000)  # at least the capacity is kept
    replay = log.since(since)
    if since >= log.start:
        assert (
            not replay.gap and replay.data == whole[since:] and replay.start == min(since, log.end)
        )
    else:
        assert replay.gap and replay.start == log.start and replay.data == whole[log.start :]


def test_a_restored_log_continues_its_offsets() -> None:
    log = RingBuffer(10, start=100, initial=b"0123456789abc")
    assert (log.start, log.end) == (103, 113)
    log.write(b"XY")
    assert log.since(111).data == b"bcXY" and log.since(50).gap


def test_modes_split_across_reads_are_tracked_and_restored() -> None:
    modes = ModeTracker()
    for part in (b"hello\x1b[?10", b"49h\x1b[?1000;1006", b"h more \x1b[?25l", b"\x1b[?2004h"):
        modes.feed(part)
    assert modes.enabled() == [1000, 1006, 1049, 2004] and modes.bracketed_paste
    restored = ModeTracker()
    restored.feed(modes.restore_sequence())
    assert restored.modes == modes.modes
    modes.feed(b"\x1b[?1049l\x1b[?2004l")
    assert modes.enabled() == [1000, 1006] and not modes.bracketed_paste


def test_named_keys() -> None:
    assert keys.encode("ctrl+c") == b"\x03" and keys.encode("Enter") == b"\r"
    assert keys.encode("alt+b") == b"\x1bb" and keys.encode("up") == b"\x1b[A"
    with pytest.raises(BadRequest, match="ctrl\\+<letter>"):
        keys.encode("hyper+x")
