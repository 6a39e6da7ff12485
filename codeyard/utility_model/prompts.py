"""Prompt texts of the utility model's tasks, kept as data files next to this module."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_DIR = Path(__file__).parent / "prompts"


@cache
def prompt(name: str) -> str:
    return (_DIR / f"{name}.md").read_text(encoding="utf-8")
