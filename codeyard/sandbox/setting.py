"""The stored ``sandbox`` setting (``on``/``off``) applied to the server's sandbox.

Read at each turn and before each repository script, so an admin's change applies to the
next process started, in every server process sharing the database.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.sandbox.policy import Sandbox
from codeyard.store import settings as settings_store

__all__ = ["KEY", "effective", "mode_of"]

KEY = "sandbox"


def mode_of(stored: dict[str, object]) -> str:
    """``on`` unless an admin stored ``off``: anything else fails closed to ``on``."""
    return "off" if stored.get(KEY) == "off" else "on"


async def effective(engine: AsyncEngine, base: Sandbox) -> Sandbox:
    """``base`` with the stored mode."""
    stored = await settings_store.read(engine)
    return replace(base, enabled=mode_of(stored) == "on")
