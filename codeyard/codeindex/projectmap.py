"""The project map, computed from the code: modules with sizes, entry points, languages,
declared dependencies and a Mermaid diagram of which module imports which (Python today).

Pure functions over what the index holds (paths, sizes, line counts, file text) and the
manifest files' text, so they are tested without git.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath
from typing import Any

LANGUAGES = {
    ".py": "Python",
    ".ts": "TypeScript",
    ".tsx": "TypeScript",
    ".js": "JavaScript",
    ".jsx": "JavaScript",
    ".go": "Go",
    ".rs": "Rust",
    ".php": "PHP",
    ".rb": "Ruby",
    ".java": "Java",
    ".kt": "Kotlin",
    ".swift": "Swift",
    ".c": "C",
    ".h": "C",
    ".cpp": "C++",
    ".cs": "C#",
    ".sql": "SQL",
    ".md": "Markdown",
    ".html": "HTML",
    ".css": "CSS",
    ".sh": "Shell",
}
ENTRY_NAMES = {
    "__main__.py",
    "main.py",
    "app.py",
    "manage.py",
    "wsgi.py",
    "asgi.py",
    "main.go",
    "main.rs",
    "index.js",
    "index.ts",
    "server.js",
    "artisan",
    "Makefile",
    "Dockerfile",
}
_IMPORT = re.compile(r"^\s*(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", re.M)


def module_of(path: str) -> str:
    """The module a file belongs to: ``(root)`` for top-level files, the directory for files
    one level down, the first two directories below that (``codeyard/api``, ``src/app``)."""
    parts = PurePosixPath(path).parts
    if len(parts) == 1:
        return "(root)"
    return parts[0] if len(parts) == 2 else f"{parts[0]}/{parts[1]}"


def modules(files: Iterable[tuple[str, int, int]]) -> list[dict[str, Any]]:
    stats: dict[str, dict[str, Any]] = {}
    for path, size, lines in files:
        entry = stats.setdefault(
            module_of(path), {"module": module_of(path), "files": 0, "bytes": 0, "lines": 0}
        )
        entry["files"] += 1
        entry["bytes"] += size
        entry["lines"] += lines
    return sorted(stats.values(), key=lambda m: (-m["lines"], m["module"]))


def languages(files: Iterable[tuple[str, int, int]]) -> dict[str, int]:
    counted: Counter[str] = Counter()
    for path, _, lines in files:
        lang = LANGUAGES.get(PurePosixPath(path).suffix.lower())
        if lang:
            counted[lang] += lines
    return dict(counted.most_common())


def entry_points(paths: Iterable[str], scripts: dict[str, str]) -> list[dict[str, str]]:
    found = [{"path": p, "kind": "file"} for p in paths if PurePosixPath(p).name in ENTRY_NAMES]
    found += [{"path": target, "kind": f"script:{name}"} for name, target in scripts.items()]
    return found


def dependencies(read: Callable[[str], str | None]) -> tuple[list[dict[str, str]], dict[str, str]]:
    """Declared dependencies (and console scripts) from pyproject.toml, requirements.txt,
    package.json and go.mod; ``read(path)`` returns a root file's text or None."""
    deps: list[dict[str, str]] = []
    scripts: dict[str, str] = {}
    if text := read("pyproject.toml"):
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            data = {}
        project = data.get("project") or {}
        deps += [{"ecosystem": "pypi", "spec": str(d)} for d in project.get("dependencies") or []]
        scripts.update({str(k): str(v) for k, v in (project.get("scripts") or {}).items()})
    if text := read("requirements.txt"):
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                deps.append({"ecosystem": "pypi", "spec": line})
    if text := read("package.json"):
        try:
            pkg = json.loads(text)
        except ValueError:
            pkg = {}
        for key in ("dependencies", "devDependencies"):
            for name, version in (pkg.get(key) or {}).items():
                deps.append({"ecosystem": "npm", "spec": f"{name}@{version}"})
        if isinstance(pkg.get("main"), str):
            scripts["main"] = pkg["main"]
        if isinstance(pkg.get("bin"), dict):
            scripts.update({str(k): str(v) for k, v in pkg["bin"].items()})
    if text := read("go.mod"):
        for m in re.finditer(r"^\s*([\w./-]+\.[\w./-]+)\s+(v[\w.+-]+)", text, re.M):
            deps.append({"ecosystem": "go", "spec": f"{m[1]} {m[2]}"})
    return deps, scripts


def import_edges(python_files: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(module, imported module) pairs between this repository's own modules."""
    texts = list(python_files)
    own = {module_of(p) for p, _ in texts}
    dotted = {m.replace("/", "."): m for m in own}
    edges: set[tuple[str, str]] = set()
    for path, text in texts:
        here = module_of(path)
        for m in _IMPORT.finditer(text):
            name = m[1] or m[2]
            parts = name.split(".")
            target = dotted.get(".".join(parts[:2])) or dotted.get(parts[0])
            if target and target != here:
                edges.add((here, target))
    return sorted(edges)


def mermaid(mods: list[dict[str, Any]], edges: list[tuple[str, str]]) -> str:
    """A Mermaid flowchart: one node per module (with its file count), one arrow per import."""
    ids = {m["module"]: f"m{i}" for i, m in enumerate(mods)}
    lines = ["flowchart LR"]
    for m in mods:
        lines.append(f'  {ids[m["module"]]}["{m["module"]} ({m["files"]} files)"]')
    for a, b in edges:
        if a in ids and b in ids:
            lines.append(f"  {ids[a]} --> {ids[b]}")
    return "\n".join(lines) + "\n"
