"""Terminal output as a log: a byte ring buffer addressed by monotonic offsets.

Offsets count every byte the terminal ever produced, so a client that saw up to offset ``n``
reconnects with ``since=n`` and gets exactly what it missed — the same promise the event log
makes with ``Last-Event-ID``. At least the newest ``capacity`` bytes are kept (up to a quarter
more between trims).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Replay:
    """Bytes from ``start`` to ``end``; ``gap`` when the asked offset had been evicted."""

    start: int
    end: int
    data: bytes
    gap: bool


class RingBuffer:
    def __init__(self, capacity: int, *, start: int = 0, initial: bytes = b"") -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._buf = bytearray(initial[-capacity:])
        self.end = start + len(initial)

    @property
    def start(self) -> int:
        """The oldest offset still held."""
        return self.end - len(self._buf)

    def write(self, data: bytes) -> None:
        """Append; the oldest bytes go in batches (a PTY delivers ~4 KiB per read, and moving
        the whole buffer for each read would cost more than everything else together)."""
        self._buf += data
        self.end += len(data)
        excess = len(self._buf) - self.capacity
        if excess > self.capacity // 4:
            del self._buf[:excess]

    def since(self, offset: int | None) -> Replay:
        """What follows ``offset`` (everything held when None or too old; nothing when ahead)."""
        start = self.start
        if offset is None or offset < start:
            return Replay(start, self.end, bytes(self._buf), offset is not None and offset < start)
        if offset >= self.end:
            return Replay(self.end, self.end, b"", False)
        return Replay(offset, self.end, bytes(self._buf[offset - start :]), False)

    def tail(self) -> bytes:
        return bytes(self._buf)
