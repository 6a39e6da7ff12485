"""Check commands, their results, and what a fix loop tells the agent: pure, no I/O.

The fix loop's promise is "once per failure, at most :data:`MAX_ATTEMPTS` times": a failure is
remembered by a key (for local checks: the worktree states and the failing check names, so an
agent turn that changed nothing does not trigger another turn), and the attempts are counted per
run (local) or per pull request (CI). Prompt texts live in ``prompts/*.md``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "LOG_LIMIT",
    "MAX_ATTEMPTS",
    "CheckResult",
    "CheckSpec",
    "ci_prompt",
    "local_failure_key",
    "local_prompt",
    "review_prompt",
    "trim_log",
]

#: Fix turns per run (local checks) or per pull request (CI) before "needs attention".
MAX_ATTEMPTS = 3
#: Characters of a failing log an agent is shown.
LOG_LIMIT = 4000

_NAME = r"^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,63}$"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# GitHub Actions prefixes every log line with a timestamp; it only costs the agent tokens.
_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ")
_NOISE = re.compile(r"^##\[(?:group|endgroup)\]|^::(?:group|endgroup)::")


class CheckSpec(BaseModel):
    """One named check command of a repository."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME, description="Shown in events and the review, e.g. `tests`.")
    command: str = Field(
        min_length=1, max_length=4000, description="Run with `bash -c` in the worktree."
    )
    timeout_seconds: float = Field(default=600.0, gt=0, le=6 * 3600)


@dataclass(frozen=True, slots=True)
class CheckResult:
    repo_id: str
    name: str
    command: str
    ok: bool
    exit_code: int | None
    timed_out: bool
    duration_ms: int
    log_tail: str

    @property
    def label(self) -> str:
        return f"{self.repo_id}:{self.name}"


def trim_log(text: str, limit: int = LOG_LIMIT) -> str:
    """The end of a log without colour codes, CI timestamps or group markers, cut at a line
    start: failures are reported last, and an agent reads plain text best."""
    lines = []
    for line in _ANSI.sub("", text).replace("\r\n", "\n").split("\n"):
        line = _STAMP.sub("", line.rstrip("\r"))
        if not _NOISE.match(line):
            lines.append(line)
    cleaned = "\n".join(lines).strip("\n")
    if len(cleaned) <= limit:
        return cleaned
    cut = cleaned[-limit:]
    newline = cut.find("\n")
    return cut[newline + 1 :] if 0 <= newline < limit // 2 else cut


def local_failure_key(run_id: str, trees: Mapping[str, str], failed: Sequence[str]) -> str:
    """The same worktree states failing the same checks is the same failure."""
    state = ",".join(f"{k}={v}" for k, v in sorted(trees.items()))
    digest = hashlib.sha256(f"{state}|{','.join(sorted(failed))}".encode()).hexdigest()[:32]
    return f"checks:{run_id}:{digest}"


@cache
def _template(name: str) -> str:
    return resources.files("codeyard.checks").joinpath(f"prompts/{name}.md").read_text("utf-8")


def local_prompt(failures: Sequence[CheckResult], attempt: int, limit: int = MAX_ATTEMPTS) -> str:
    """The next turn's message after local checks failed: each failing command and its log."""
    parts = []
    for result in failures:
        why = "timed out" if result.timed_out else f"exit code {result.exit_code}"
        log = trim_log(result.log_tail) or "(no output)"
        parts.append(f"## {result.name} (`{result.command}`, {why})\n```\n{log}\n```")
    return _template("local_checks").format(
        count=len(failures), attempt=attempt, limit=limit, failures="\n\n".join(parts)
    )


def ci_prompt(
    *,
    name: str,
    number: int,
    sha: str,
    url: str,
    log: str,
    annotations: Sequence[Mapping[str, object]],
    attempt: int,
    limit: int = MAX_ATTEMPTS,
) -> str:
    """The next turn's message after a required CI check failed on the pull request's head."""
    notes = "".join(
        f"- {a.get('path')}:{a.get('start_line')}: {a.get('annotation_level', 'failure')}: "
        f"{a.get('message')}\n"
        for a in annotations
    )
    return _template("ci_failure").format(
        name=name,
        number=number,
        sha=sha[:12],
        url=url or "(no URL)",
        annotations=f"Annotations:\n{notes}" if notes else "",
        log=trim_log(log) or "(the log could not be fetched)",
        attempt=attempt,
        limit=limit,
    )


def review_prompt(
    *, reviewer: str, number: int, summary: str, comments: Sequence[Mapping[str, object]]
) -> str:
    """The next turn's message after "changes requested": each comment at its file and line."""
    lines = "".join(
        f"- {c.get('path')}:{c.get('line') or c.get('original_line') or '?'}: {c.get('body')}\n"
        for c in comments
    )
    return _template("review_changes").format(
        reviewer=reviewer,
        number=number,
        summary=f"Review: {summary}\n" if summary else "",
        comments=lines,
    )
