"""The current screen as text (CodePiper's ``output``), from a server-side ``pyte`` model.

The model is brought up to date only when someone asks, from the output log: a busy terminal
does not pay for emulation it never shows. When the log lost bytes the model had not seen
(eviction), it starts again from the oldest byte held.
"""

from __future__ import annotations

from codeyard.terminals.buffer import RingBuffer


class ScreenModel:
    def __init__(self, cols: int, rows: int) -> None:
        import pyte  # the terminal emulator loads with the first terminal, not at start-up

        self._screen = pyte.Screen(cols, rows)
        self._stream = pyte.ByteStream(self._screen)
        self._seen = 0

    def resize(self, cols: int, rows: int) -> None:
        self._screen.resize(rows, cols)

    def text(self, log: RingBuffer) -> list[str]:
        replay = log.since(self._seen)
        if replay.gap:
            self._screen.reset()
        self._stream.feed(replay.data)
        self._seen = replay.end
        return [line.rstrip() for line in self._screen.display]

    def cursor(self) -> tuple[int, int]:
        return self._screen.cursor.x, self._screen.cursor.y
