"""Markdown for the managed documents, from the project map and schema (pure)."""

from __future__ import annotations

from typing import Any


def project_map(repos: list[dict[str, Any]]) -> str:
    out: list[str] = []
    for repo in repos:
        out += [
            f"## {repo['name']}",
            "",
            f"{repo['files']} files, {repo['lines']} lines at `{(repo['commit'] or '')[:12]}`.",
            "",
        ]
        if repo["languages"]:
            langs = ", ".join(f"{k} ({v} lines)" for k, v in repo["languages"].items())
            out += [f"Languages: {langs}.", ""]
        out += ["| module | files | lines |", "|---|---|---|"]
        out += [f"| `{m['module']}` | {m['files']} | {m['lines']} |" for m in repo["modules"]]
        out.append("")
        if repo["entry_points"]:
            out += ["Entry points:", ""]
            out += [f"- `{e['path']}` ({e['kind']})" for e in repo["entry_points"]]
            out.append("")
        if repo["dependencies"]:
            out += ["Dependencies:", ""]
            out += [f"- {d['ecosystem']}: `{d['spec']}`" for d in repo["dependencies"]]
            out.append("")
    return "\n".join(out)


def database_schema(repos: list[dict[str, Any]]) -> str:
    out: list[str] = []
    for repo in repos:
        out += [f"## {repo['name']}", ""]
        if not repo["tables"]:
            out += ["No tables found in the code.", ""]
            continue
        for table in repo["tables"]:
            out += [f"### `{table['name']}`", "", f"From `{table['source']}`.", ""]
            out += ["| column | type |", "|---|---|"]
            out += [f"| `{c['name']}` | {c['type']} |" for c in table["columns"]]
            out.append("")
    return "\n".join(out)
