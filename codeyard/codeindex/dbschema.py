"""The database schema a repository declares, read from its code: SQL ``CREATE TABLE``
statements, SQLAlchemy ``Table(...)`` and Alembic ``op.create_table(...)``, Django models and
Laravel ``Schema::create`` migrations. Pattern-based and pure: a best effort that names where
each table was found, never a substitute for the live database."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_SQL_TABLE = re.compile(
    r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?[`\"\[]?(\w+)[`\"\]]?\s*\((.*?)\)\s*;",
    re.I | re.S,
)
_SQL_COLUMN = re.compile(r"^(\S+)\s+(\w+(?:\s*\([^)]*\))?)")
_SQL_SKIP = ("primary", "foreign", "unique", "constraint", "index", "key", "check")
_SA_TABLE = re.compile(r"(?:\bTable|create_table)\(\s*[\"'](\w+)[\"']")
_SA_COLUMN = re.compile(r"Column\(\s*[\"'](\w+)[\"']\s*,\s*(?:sa\.)?(\w+)")
_DJANGO_MODEL = re.compile(r"^class\s+(\w+)\((?:models\.)?Model\):", re.M)
_DJANGO_FIELD = re.compile(r"^\s+(\w+)\s*=\s*models\.(\w+)\(", re.M)
_LARAVEL_TABLE = re.compile(r"Schema::create\(\s*['\"](\w+)['\"]")
_LARAVEL_COLUMN = re.compile(r"\$table->(\w+)\(\s*['\"](\w+)['\"]")


def _split_top(body: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in body:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _sql(path: str, text: str) -> list[dict[str, Any]]:
    tables = []
    for m in _SQL_TABLE.finditer(text):
        columns = []
        for item in _split_top(m[2]):
            col = _SQL_COLUMN.match(item)
            if col and col[1].strip('`"[]').lower() not in _SQL_SKIP:
                columns.append({"name": col[1].strip('`"[]'), "type": col[2].replace(" ", "")})
        tables.append({"name": m[1], "source": path, "columns": columns})
    return tables


def _chunks(pattern: re.Pattern[str], text: str) -> Iterable[tuple[str, str]]:
    """(name, the text until the next match) for each match of ``pattern``."""
    found = list(pattern.finditer(text))
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        yield m[1], text[m.end() : end]


def _python(path: str, text: str) -> list[dict[str, Any]]:
    tables = [
        {
            "name": name,
            "source": path,
            "columns": [{"name": c, "type": t} for c, t in _SA_COLUMN.findall(body)],
        }
        for name, body in _chunks(_SA_TABLE, text)
    ]
    tables += [
        {
            "name": name.lower(),
            "source": path,
            "columns": [{"name": c, "type": t} for c, t in _DJANGO_FIELD.findall(body)],
        }
        for name, body in _chunks(_DJANGO_MODEL, text)
    ]
    return tables


def _php(path: str, text: str) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "source": path,
            "columns": [{"name": c, "type": t} for t, c in _LARAVEL_COLUMN.findall(body)],
        }
        for name, body in _chunks(_LARAVEL_TABLE, text)
    ]


def tables(files: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """Tables found in ``(path, text)`` pairs; a table declared twice keeps its first form."""
    seen: dict[str, dict[str, Any]] = {}
    for path, text in files:
        if path.endswith(".sql"):
            found = _sql(path, text)
        elif path.endswith(".py"):
            found = _python(path, text)
        elif path.endswith(".php"):
            found = _php(path, text)
        else:
            continue
        for table in found:
            seen.setdefault(table["name"], table)
    return sorted(seen.values(), key=lambda t: str(t["name"]))


def mermaid_er(found: list[dict[str, Any]]) -> str:
    """The tables as a Mermaid ``erDiagram`` (columns with their declared types)."""
    lines = ["erDiagram"]
    for table in found:
        lines.append(f"  {table['name']} {{")
        for col in table["columns"]:
            kind = re.sub(r"\W", "_", str(col["type"])) or "any"
            lines.append(f"    {kind} {col['name']}")
        lines.append("  }")
    return "\n".join(lines) + "\n"
