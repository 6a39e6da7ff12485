"""Terminal modes a program switched on, tracked so a re-attaching viewer gets them back.

Peers replay a screen snapshot and lose the alternate screen, mouse reporting or bracketed
paste the program had enabled (Orca #11123). We watch DEC private mode sequences
(``ESC [ ? n h`` / ``ESC [ ? n l``) in the output and re-emit the ones that are on.
"""

from __future__ import annotations

import re

#: Modes worth restoring: cursor keys, alternate screens, mouse reporting, focus, paste.
TRACKED = frozenset(
    {1, 47, 1047, 1049, 1000, 1002, 1003, 1004, 1005, 1006, 1015, 2004, 25},
)
_SEQ = re.compile(rb"\x1b\[\?([0-9;]+)([hl])")
_MAX_PARTIAL = 32


class ModeTracker:
    def __init__(self, on: dict[int, bool] | None = None) -> None:
        self.modes: dict[int, bool] = dict(on or {})
        self._partial = b""

    def feed(self, data: bytes) -> None:
        chunk = self._partial + data
        for match in _SEQ.finditer(chunk):
            value = match.group(2) == b"h"
            for part in match.group(1).split(b";"):
                if part.isdigit() and int(part) in TRACKED:
                    self.modes[int(part)] = value
        # A sequence split across reads: keep an unterminated ``ESC [ ?…`` for the next chunk.
        cut = chunk.rfind(b"\x1b", max(0, len(chunk) - _MAX_PARTIAL))
        tail = chunk[cut:] if cut >= 0 else b""
        self._partial = tail if cut >= 0 and not _SEQ.match(tail) else b""

    def enabled(self) -> list[int]:
        return sorted(m for m, on in self.modes.items() if on and m != 25)

    def restore_sequence(self) -> bytes:
        """Bytes that switch the tracked modes back on (cursor hidden stays hidden)."""
        out = b"".join(b"\x1b[?%dh" % m for m in self.enabled())
        if self.modes.get(25) is False:
            out += b"\x1b[?25l"
        return out

    @property
    def bracketed_paste(self) -> bool:
        return self.modes.get(2004, False)
