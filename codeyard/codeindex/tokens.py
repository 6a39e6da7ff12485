"""Symbol-aware terms: ``getUserName`` and ``get_user_name`` are also found as ``user`` and
``name``, while the whole identifier stays searchable. Pure functions."""

from __future__ import annotations

import re

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
#: Terms shorter than this add noise, not recall.
MIN_PART = 2


def parts(identifier: str) -> list[str]:
    """``HTTPServerError`` → ``http server error``; ``max_body_bytes`` → ``max body bytes``."""
    out: list[str] = []
    for chunk in identifier.split("_"):
        out.extend(p.lower() for p in _PART.findall(chunk) if len(p) >= MIN_PART)
    return out


def symbol_terms(text: str) -> str:
    """The split parts of every compound identifier in ``text``, each once, space-separated."""
    seen: dict[str, None] = {}
    for ident in set(_IDENT.findall(text)):
        split = parts(ident)
        if len(split) > 1:
            for p in split:
                seen.setdefault(p)
    return " ".join(seen)


def query_terms(query: str) -> list[str]:
    """Terms to look for: each identifier whole (lowercased) and its parts."""
    terms: dict[str, None] = {}
    for ident in _IDENT.findall(query):
        if len(ident) >= MIN_PART:
            terms.setdefault(ident.lower())
        for p in parts(ident):
            terms.setdefault(p)
    return list(terms)


def match_expression(query: str) -> str | None:
    """An FTS5 MATCH expression ranking files with any of the terms (None: nothing to find)."""
    terms = query_terms(query)
    if not terms:
        return None
    return " OR ".join(f'"{t}"' for t in terms)
