"""Tool-name and path globs, compiled once when a policy is saved.

Why our own translation: ``fnmatch`` silently treats an unclosed ``[`` as a literal and knows
nothing of ``**`` or ``{a,b}``; a rule that cannot mean what its author wrote must be refused
(422) rather than quietly match nothing.

Path globs:

- ``/abs/**`` is matched against the absolute path; anything else against the path relative to
  the worktree (``./`` is dropped). A glob without ``/`` matches the file name at any depth
  (``*.env`` matches ``config/prod.env``), as in ``.gitignore``.
- ``*`` and ``?`` stay within one path segment, ``**`` crosses them, ``dir/**`` also matches
  ``dir``, a trailing ``/`` means ``/**``; ``[abc]``/``[!abc]`` classes and ``{a,b}`` choices.
- ``~`` is not expanded (refused: write the absolute path).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from codeyard.domain.policy.paths import Place

__all__ = ["GlobError", "PathGlob", "ToolGlob"]


class GlobError(ValueError):
    """A glob that cannot mean what it says."""


@dataclass(frozen=True, slots=True)
class ToolGlob:
    """Matches a tool's name or its kind, case-insensitively.

    ``Bash`` therefore matches every provider's shell tool (kind ``bash``), ``Edit`` every edit
    tool, ``mcp`` every MCP tool, ``mcp__github__*`` GitHub's MCP tools.
    """

    pattern: str
    literal: str | None
    regex: re.Pattern[str] | None

    @classmethod
    def compile(cls, pattern: str) -> ToolGlob:
        if not pattern or not pattern.strip():
            raise GlobError("the tool glob is empty")
        lowered = pattern.strip().lower()
        if not any(c in lowered for c in "*?["):
            return cls(pattern, lowered, None)
        return cls(pattern, None, _compile(_translate(lowered, segments=False)))

    def matches(self, tool: str, kind: str) -> bool:
        """``tool`` is expected lower-cased already (done once per request)."""
        if self.literal is not None:
            return self.literal == tool or self.literal == kind
        assert self.regex is not None
        return bool(self.regex.fullmatch(tool) or self.regex.fullmatch(kind))


@dataclass(frozen=True, slots=True)
class PathGlob:
    pattern: str
    absolute: bool
    regex: re.Pattern[str]
    #: Text every matching path contains (a cheap pre-check before the regex).
    literal: str
    #: The first path component when it is plain text (``/opt/x/**`` → ``opt``), else None:
    #: every matching path starts with it, which lets many rules be skipped at once.
    head: str | None

    @classmethod
    def compile(cls, pattern: str) -> PathGlob:
        glob = pattern.strip()
        if not glob:
            raise GlobError("the path glob is empty")
        if glob.startswith("~"):
            raise GlobError("'~' is not expanded; write the absolute path")
        if "\x00" in glob:
            raise GlobError("the path glob contains a NUL character")
        absolute = glob.startswith("/")
        while glob.startswith("./"):
            glob = glob[2:]
        if glob.endswith("/") and glob != "/":
            glob += "**"
        body = _translate(glob, segments=True)
        if not absolute and "/" not in glob:
            body = "(?:.*/)?" + body
        first = glob.split("/")[1 if absolute else 0] if absolute or "/" in glob else ""
        head = first if first not in ("", ".", "..") and not _SPECIAL.search(first) else None
        return cls(pattern, absolute, _compile(body), _literal(glob), head)

    def matches(self, place: Place, strict: bool) -> bool:
        """Strict (for ``allow``): only the resolved path counts, and must be known.

        Lenient (for ``ask``/``deny``): the spelling counts too, and an unknown path is matched
        by its raw text, so a ``deny`` is not dodged by a symlink or a relative detour.
        """
        if self.absolute:
            candidates = [place.real] if strict else [place.real, place.lexical]
        else:
            candidates = [place.rel] if strict else [place.rel, place.lexical_rel]
        if not strict and place.real is None:
            candidates.append(place.raw)
        return any(c is not None and self.regex.fullmatch(c) for c in candidates)


_SPECIAL = re.compile(r"[*?\[\]{}]")


def _literal(glob: str) -> str:
    """The longest run of plain characters, without edge slashes (``dir/**`` matches ``dir``)."""
    runs: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if c in "*?[{":
            runs.append("".join(cur))
            cur.clear()
            if c == "[":
                close = glob.find("]", i + 2)
                i = len(glob) if close < 0 else close + 1
            elif c == "{":
                close = glob.find("}", i)
                i = len(glob) if close < 0 else close + 1
            else:
                i += 1
        else:
            cur.append(c)
            i += 1
    runs.append("".join(cur))
    return max((r.strip("/") for r in runs), key=len)


def _compile(body: str) -> re.Pattern[str]:
    try:
        return re.compile(body)
    except re.error as exc:  # e.g. a reversed range `[z-a]`
        raise GlobError(f"invalid character class: {exc}") from None


def _translate(glob: str, *, segments: bool) -> str:
    """Glob → regex body. ``segments``: ``*``/``?`` stop at ``/`` and ``**`` crosses it."""
    out: list[str] = []
    i, n = 0, len(glob)
    star = "[^/]*" if segments else ".*"
    while i < n:
        c = glob[i]
        if c == "*":
            j = i
            while j < n and glob[j] == "*":
                j += 1
            if not segments or j - i == 1:
                out.append(star)
            elif (i == 0 or glob[i - 1] == "/") and j < n and glob[j] == "/":
                out.append("(?:.*/)?")  # `**/`: zero or more directories
                j += 1
            elif i > 0 and glob[i - 1] == "/" and j == n:
                out[-1] = "(?:/.*)?"  # `dir/**`: dir itself and everything under it
            elif i == 0 and j == n:
                out.append(".*")
            else:
                out.append(star)  # `a**b`: an ordinary star
            i = j
        elif c == "?":
            out.append("[^/]" if segments else ".")
            i += 1
        elif c == "[":
            i = _char_class(glob, i, out)
        elif c == "{":
            end = glob.find("}", i)
            if end < 0:
                raise GlobError(f"unclosed '{{' in {glob!r}")
            inner = glob[i + 1 : end]
            if "{" in inner:
                raise GlobError(f"nested '{{' is not supported in {glob!r}")
            choices = [_translate(choice, segments=segments) for choice in inner.split(",")]
            out.append("(?:" + "|".join(choices) + ")")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _char_class(glob: str, i: int, out: list[str]) -> int:
    j = i + 1
    if j < len(glob) and glob[j] in "!^":
        j += 1
    if j < len(glob) and glob[j] == "]":
        j += 1  # a leading `]` is a member
    end = glob.find("]", j)
    if end < 0:
        raise GlobError(f"unclosed '[' in {glob!r}")
    body = glob[i + 1 : end]
    negate = body[:1] in ("!", "^")
    if negate:
        body = body[1:]
    body = body.replace("\\", "\\\\").replace("[", "\\[")
    out.append("[" + ("^" if negate else "") + body + "]")
    return end + 1
