"""The settings one Codex turn runs with, from the run's validated options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class TurnSettings:
    cli: Path
    env: dict[str, str] = field(default_factory=dict)
    #: Codex configuration overrides (``-c key=value``), values as JSON.
    config: dict[str, Any] = field(default_factory=dict)
    instructions: str | None = None
    base_instructions: str | None = None
    sandbox: str = "workspace-write"
    approval_policy: str = "untrusted"
    effort: str | None = None
