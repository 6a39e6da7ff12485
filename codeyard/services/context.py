"""The few collaborators every use case needs, wired once by ``app.py``."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.config import Settings
from codeyard.domain.caps import Caps
from codeyard.events.hub import Hub
from codeyard.executor.interface import Executor
from codeyard.store.writer import Writer


@dataclass(slots=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    writer: Writer
    hub: Hub
    #: The only executor surface services see (``executor.interface``).
    executor: Executor
    #: Per-user caps on open event streams and clones (issue 11).
    caps: Caps = field(default_factory=Caps)

    @property
    def database(self) -> str:
        return self.engine.dialect.name
