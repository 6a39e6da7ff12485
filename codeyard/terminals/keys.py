"""Named keys (``ctrl+c``, ``enter``, ``up``…) as the bytes a terminal sends for them."""

from __future__ import annotations

from codeyard.domain.errors import BadRequest

NAMED: dict[str, bytes] = {
    "enter": b"\r",
    "return": b"\r",
    "tab": b"\t",
    "backspace": b"\x7f",
    "escape": b"\x1b",
    "esc": b"\x1b",
    "space": b" ",
    "up": b"\x1b[A",
    "down": b"\x1b[B",
    "right": b"\x1b[C",
    "left": b"\x1b[D",
    "home": b"\x1b[H",
    "end": b"\x1b[F",
    "pageup": b"\x1b[5~",
    "pagedown": b"\x1b[6~",
    "delete": b"\x1b[3~",
    "insert": b"\x1b[2~",
    "f1": b"\x1bOP",
    "f2": b"\x1bOQ",
    "f3": b"\x1bOR",
    "f4": b"\x1bOS",
}


def encode(name: str) -> bytes:
    """``ctrl+<letter>`` and ``alt+<key>`` combine; anything else must be a named key."""
    key = name.strip().lower()
    if key.startswith("ctrl+") and len(key) == 6 and "a" <= key[5] <= "z":
        return bytes([ord(key[5]) - ord("a") + 1])
    if key in ("ctrl+[", "ctrl+\\", "ctrl+]"):
        return bytes([{"[": 27, "\\": 28, "]": 29}[key[5]]])
    if key.startswith("alt+") and len(key) > 4:
        rest = key[4:]
        return b"\x1b" + (NAMED[rest] if rest in NAMED else rest.encode())
    if key in NAMED:
        return NAMED[key]
    raise BadRequest(
        f"Unknown key '{name}': use ctrl+<letter>, alt+<key> or one of "
        f"{', '.join(sorted(NAMED))}; send plain text with the 'text' route.",
        key=name,
    )
