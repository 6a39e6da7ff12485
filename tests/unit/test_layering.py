"""Imports point down the layers; services see an executor only through its interface.

Read from the source with ``ast`` (no import side effects), so a new module that reaches into
executor internals, or a lower package that imports upwards, fails here with the line to fix.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "codeyard"


def _imports(path: Path, root: Path = PACKAGE.parent) -> list[tuple[int, str]]:
    """Every module ``path`` imports, absolute, with its line (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts = list(path.relative_to(root).with_suffix("").parts)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = parts[: len(parts) - node.level]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            # ``from codeyard.executor import local`` imports the submodule ``local``.
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _modules(package: str) -> list[Path]:
    return sorted((PACKAGE / package).rglob("*.py"))


def _violations(
    package: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()
) -> list[str]:
    bad = []
    for path in _modules(package):
        for line, name in _imports(path):
            hits = any(name == f or name.startswith(f + ".") for f in forbidden)
            ok = any(name == a or name.startswith(a + ".") for a in allowed)
            if hits and not ok:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    return bad


def test_services_see_only_the_executor_interface() -> None:
    bad = _violations(
        "services",
        ("codeyard.executor",),
        allowed=("codeyard.executor.interface",),
    )
    assert bad == [], "services must use codeyard.executor.interface only:\n" + "\n".join(bad)


@pytest.mark.parametrize("package", ["run_workspace", "policy", "executor", "temporal", "checks"])
def test_lower_layers_do_not_import_services_or_api(package: str) -> None:
    bad = _violations(package, ("codeyard.services", "codeyard.api", "codeyard.app"))
    assert bad == [], "imports must point down the layers:\n" + "\n".join(bad)


@pytest.mark.parametrize("package", ["temporal", "executor", "run_workspace", "checks"])
def test_executors_and_what_they_run_do_not_import_the_workflow_engine(package: str) -> None:
    """The workflow engine sits above the executors (it drives runs through the services); what
    both need (a sandboxed command in a worktree) lives below them, in ``codeyard.workspace``."""
    bad = _violations(package, ("codeyard.workflows",))
    assert bad == [], f"{package} sits below the workflow engine:\n" + "\n".join(bad)


@pytest.mark.parametrize("package", ["run_workspace", "policy", "checks"])
def test_shared_run_parts_do_not_import_an_executor(package: str) -> None:
    bad = _violations(package, ("codeyard.executor",))
    assert bad == [], f"{package} sits below every executor:\n" + "\n".join(bad)


def test_the_walker_sees_every_form_of_import(tmp_path: Path) -> None:
    """Plain, ``from``, submodule and relative imports into executor internals are all named."""
    module = tmp_path / "codeyard" / "services" / "bad.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "import codeyard.executor.local\n"
        "from codeyard.executor import turns\n"
        "from ..executor.handle import RunHandle\n"
        "from codeyard.executor.interface import Executor\n"
    )
    names = [name for _, name in _imports(module, tmp_path)]
    assert "codeyard.executor.local" in names
    assert "codeyard.executor.turns" in names
    assert "codeyard.executor.handle" in names
    assert "codeyard.executor.interface" in names
