"""Opaque prefixed identifiers (``run_…``, ``prj_…``) and title slugs."""

from __future__ import annotations

import re
import secrets

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_id(prefix: str) -> str:
    """A 16-character random id with a type prefix, e.g. ``run_k3j2…``."""
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(16))


def slugify(text: str, max_len: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_len].rstrip("-") or "run"


def title_from_prompt(prompt: str, max_len: int = 72) -> str:
    first = prompt.strip().splitlines()[0] if prompt.strip() else "Untitled run"
    return first if len(first) <= max_len else first[: max_len - 1].rstrip() + "…"
