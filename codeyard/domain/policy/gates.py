"""Hard gates: actions no rule, trust or ``auto`` mode may allow without a person's approval.

Why: some tool calls destroy work or step on Codeyard's job (landing is Codeyard's, not the
agent's). They are checked before anything else; settings only choose ``ask`` (default) or
``deny`` per gate. Where a gate cannot be ruled out (an expansion, an unknown directory) it is
assumed to apply: gates fail closed.

Gate ids (rule ``gate:<id>`` in decisions):

- ``write-outside-worktree``: an edit/write tool, a shell redirection (``> /abs/path``), or a
  file-writing command (``tee touch mkdir rm rmdir mv truncate shred unlink chmod chown chgrp``
  on any operand; ``cp install ln rsync`` on the destination; ``dd of=``) whose target resolves
  outside the worktree. Best effort for shell: programs that write files by themselves
  (``sed -i``, compilers, scripts) are not recognised. ``/dev/null`` and friends are fine.
- ``rm-rf-outside-worktree``: ``rm`` with recursive and force flags on the worktree itself or
  anything outside it.
- ``git-push-force``: ``git push`` with ``-f``/``--force*``/``--mirror``/``+refspec``.
- ``git-reset-hard``: ``git reset --hard``.
- ``git-clean``: ``git clean`` other than a dry run (``-n``).
- ``git-landing``: ``git merge|rebase|pull|cherry-pick``.
- ``read-private`` (always ``deny``, not a setting): any path in a tool call or shell line
  that resolves into Codeyard's data directory or another run's worktree — ``admin.token``,
  ``secret.key``, the database. The sandbox hides them too; this gate holds where it is off.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from codeyard.domain.errors import ValidationFailed
from codeyard.domain.policy.commands import SimpleCommand, Word, operands, walk
from codeyard.domain.policy.paths import Place, Resolver
from codeyard.domain.policy.shell import split

__all__ = [
    "GATES",
    "GateAction",
    "GateHit",
    "GateId",
    "GateSettings",
    "command_gates",
    "path_gates",
    "read_gates",
    "scan_text",
]

GateId = Literal[
    "write-outside-worktree",
    "rm-rf-outside-worktree",
    "git-push-force",
    "git-reset-hard",
    "git-clean",
    "git-landing",
    "read-private",
]
GateAction = Literal["ask", "deny"]

#: Every gate and what it stops, for settings pages and messages.
GATES: dict[GateId, str] = {
    "write-outside-worktree": "writes outside the run's worktree",
    "rm-rf-outside-worktree": "rm -rf of the worktree itself or a path outside it",
    "git-push-force": "git push --force",
    "git-reset-hard": "git reset --hard",
    "git-clean": "git clean (other than a dry run)",
    "git-landing": (
        "git merge, rebase, pull or cherry-pick by the agent (landing is Codeyard's job)"
    ),
}
_GIT_GATES: tuple[GateId, ...] = ("git-push-force", "git-reset-hard", "git-clean", "git-landing")
#: Gates that deny whatever the settings say (they are not in :data:`GATES`, so not settable).
ALWAYS_DENY: frozenset[str] = frozenset({"read-private"})


@dataclass(frozen=True, slots=True)
class GateSettings:
    """Per-gate action; a gate not listed asks."""

    actions: Mapping[str, GateAction] = field(default_factory=dict)

    def action(self, gate: GateId) -> GateAction:
        return self.actions.get(gate, "ask")

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any] | None, loc: Sequence[str] = ("gates",)
    ) -> GateSettings:
        """Settings from ``{gate id: "ask"|"deny"}``; unknown ids or actions are a 422."""
        errors: list[dict[str, Any]] = []
        actions: dict[str, GateAction] = {}
        for gate, action in (data or {}).items():
            if gate not in GATES:
                errors.append(
                    {"loc": [*loc, gate], "msg": f"unknown gate; gates: {', '.join(GATES)}"}
                )
            elif action not in ("ask", "deny"):
                errors.append({"loc": [*loc, gate], "msg": "must be 'ask' or 'deny'"})
            else:
                actions[gate] = cast(GateAction, action)
        if errors:
            summary = "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in errors)
            raise ValidationFailed(f"The gate settings are not valid: {summary}", errors=errors)
        return cls(actions)


@dataclass(frozen=True, slots=True)
class GateHit:
    gate: GateId
    reason: str


def path_gates(places: Iterable[Place]) -> list[GateHit]:
    """An edit/write tool's paths: each must resolve inside the worktree."""
    return [_outside(place) for place in places if not place.inside]


def command_gates(
    commands: Sequence[SimpleCommand], start: str | None, resolve: Resolver
) -> list[GateHit]:
    """Gates tripped by the simple commands of one shell line, run from ``start``.

    Relative paths follow ``cd`` (see :func:`commands.walk`); where the directory is unknown
    they are unknown, hence gated.
    """
    hits: list[GateHit] = []
    for cmd, cwd in walk(commands, start, resolve):
        hits += _git(cmd)
        hits += _rm(cmd, cwd, resolve)
        hits += [_outside(p) for p in _write_targets(cmd, cwd, resolve) if not p.inside]
    return hits


_TOKEN = re.compile(r"[^\s;&|()<>`\"'$]+")
_ABS_REDIRECT = re.compile(r">\s*['\"]?(?!/dev/(null|stdout|stderr)\b)[/~$]")


def scan_text(line: str, start: str | None, resolve: Resolver) -> list[GateHit]:
    """Best-effort gates for a line the parser refused (``eval "git push -f"``): the gates of
    every rough piece that does parse, plus a token scan for the worst cases."""
    hits: list[GateHit] = []
    for part in rough_parts(line):
        commands = split(part)
        if commands:
            hits += command_gates(commands, start, resolve)
    tokens = {t.lower() for t in _TOKEN.findall(line)}
    why = "in a command line that cannot be read safely"
    if "git" in tokens:
        if "push" in tokens and any(_push_forces(Word(t)) for t in tokens):
            hits.append(GateHit("git-push-force", f"git push --force {why}"))
        if "reset" in tokens and "--hard" in tokens:
            hits.append(GateHit("git-reset-hard", f"git reset --hard {why}"))
        if "clean" in tokens:
            hits.append(GateHit("git-clean", f"git clean {why}"))
        if tokens & {"merge", "rebase", "pull", "cherry-pick"}:
            hits.append(GateHit("git-landing", f"git merge/rebase/pull/cherry-pick {why}"))
    flags = [t for t in tokens if t.startswith("-")]
    if (
        "rm" in tokens
        and _has_flag(flags, "rR", "--recursive")
        and _has_flag(flags, "f", "--force")
    ):
        hits.append(GateHit("rm-rf-outside-worktree", f"rm -rf {why}"))
    if _ABS_REDIRECT.search(line):
        hits.append(GateHit("write-outside-worktree", f"a redirection outside the worktree {why}"))
    return hits


_ROUGH_SPLIT = re.compile(r"[;&|\n()`<>{}]|\$\(")


def rough_parts(line: str, limit: int = 256) -> list[str]:
    """Candidate commands of a line the parser refused, for gates and ``deny``/``ask`` rules
    (never ``allow``): the whole line, and every word-suffix of every operator-separated piece,
    quotes dropped (``eval 'curl x'`` yields ``curl x``). Over-inclusive on purpose."""
    parts = [line]
    for piece in _ROUGH_SPLIT.split(line):
        words = piece.replace("'", " ").replace('"', " ").replace("\\", " ").split()
        parts += [" ".join(words[i:]) for i in range(len(words))]
    return list(dict.fromkeys(parts))[:limit]


# -- git ---------------------------------------------------------------------------------------

_GIT_GLOBAL_VALUE = frozenset(
    {
        "-C",
        "-c",
        "--git-dir",
        "--work-tree",
        "--namespace",
        "--config-env",
        "--super-prefix",
        "--list-cmds",
    }
)


def _git(cmd: SimpleCommand) -> list[GateHit]:
    if cmd.name != "git":
        return []
    argv = cmd.argv
    i, opaque = 1, False
    while i < len(argv) and argv[i].text.startswith("-") and not argv[i].dynamic:
        text = argv[i].text
        value = argv[i + 1] if text in _GIT_GLOBAL_VALUE and i + 1 < len(argv) else None
        if text.startswith("--config-env="):
            value = Word(text.split("=", 1)[1])
        if text in ("-c", "--config-env") or text.startswith("--config-env="):
            opaque |= value is None or value.dynamic or value.text.lower().startswith("alias.")
        i += 2 if text in _GIT_GLOBAL_VALUE else 1
    if i >= len(argv):
        return []
    sub, args = argv[i], argv[i + 1 :]
    if sub.dynamic or opaque:
        why = "a git command whose subcommand cannot be read (an expansion or an alias)"
        return [GateHit(g, why) for g in _GIT_GATES]
    name = sub.text
    unknown = any(a.dynamic for a in args)
    if name == "push" and (unknown or any(_push_forces(a) for a in args)):
        return [GateHit("git-push-force", _why("git push --force", unknown, cmd))]
    if name == "reset" and (unknown or any(a.text == "--hard" for a in args)):
        return [GateHit("git-reset-hard", _why("git reset --hard", unknown, cmd))]
    if name == "clean":
        flags = [a.text for a in args if not a.dynamic and a.text.startswith("-")]
        if not _has_flag(flags, "n", "--dry-run"):
            return [GateHit("git-clean", f"git clean deletes untracked files: `{cmd.text}`")]
    if name in ("merge", "rebase", "pull", "cherry-pick"):
        return [GateHit("git-landing", f"git {name} by the agent (Codeyard lands the run)")]
    return []


def _push_forces(word: Word) -> bool:
    text = word.text
    if text in ("-f", "--force", "--mirror") or text.startswith(("--force", "+")):
        return True
    return bool(re.fullmatch(r"-[a-zA-Z]*f[a-zA-Z]*", text)) and not text.startswith("--")


def _why(what: str, unknown: bool, cmd: SimpleCommand) -> str:
    if unknown:
        return f"cannot rule out {what}: an argument is an expansion in `{cmd.text}`"
    return f"{what}: `{cmd.text}`"


def _has_flag(flags: Iterable[str], short: str, long: str) -> bool:
    for flag in flags:
        if flag == long or (
            not flag.startswith("--") and flag.startswith("-") and any(c in flag[1:] for c in short)
        ):
            return True
    return False


# -- files -------------------------------------------------------------------------------------

_DEVICES = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/zero"})
_WRITES_ALL = frozenset(
    {
        "tee",
        "touch",
        "mkdir",
        "rm",
        "rmdir",
        "mv",
        "truncate",
        "shred",
        "unlink",
        "chmod",
        "chown",
        "chgrp",
    }
)
_WRITES_LAST = frozenset({"cp", "install", "ln", "rsync"})


def _rm(cmd: SimpleCommand, cwd: str | None, resolve: Resolver) -> list[GateHit]:
    if cmd.name != "rm":
        return []
    flags, targets = operands(cmd.argv)
    if not (_has_flag(flags, "rR", "--recursive") and _has_flag(flags, "f", "--force")):
        return []
    hits = []
    for word in targets:
        place = resolve(word.text, cwd, known=not word.dynamic)
        if not place.inside or place.rel == ".":
            where = "the worktree itself" if place.inside else _where(place)
            hits.append(GateHit("rm-rf-outside-worktree", f"`{cmd.text}` removes {where}"))
    return hits


def _write_targets(cmd: SimpleCommand, cwd: str | None, resolve: Resolver) -> list[Place]:
    words = [r.target for r in cmd.redirects if r.writes]
    if cmd.argv:
        flags, args = operands(cmd.argv)
        if cmd.name in _WRITES_ALL:
            words += args
        elif cmd.name in _WRITES_LAST:
            target = [f.split("=", 1)[1] for f in flags if f.startswith("--target-directory=")]
            if "-t" in flags:
                # `cp -t DIR src…`: the directory is the operand right after -t.
                pos = [w.text for w in cmd.argv].index("-t") + 1
                words += list(cmd.argv[pos : pos + 1])
            words += [Word(t) for t in target] or args[-1:]
        elif cmd.name == "dd":
            words += [Word(w.text[3:], w.dynamic) for w in args if w.text.startswith("of=")]
    places = []
    for word in words:
        if word.text in _DEVICES and not word.dynamic:
            continue
        places.append(resolve(word.text, cwd, known=not word.dynamic))
    return places


def _outside(place: Place) -> GateHit:
    return GateHit("write-outside-worktree", f"writes {_where(place)}")


def _where(place: Place) -> str:
    if place.real is None:
        return f"{place.raw!r}, which cannot be located before it runs"
    return f"{place.real!r}, outside the worktree"


# -- private places ----------------------------------------------------------------------------

_WORD = re.compile(r"[^\s;&|()<>`\"']+")
_HOME_VAR = re.compile(r"^(~|\$HOME\b|\$\{HOME\})")
_WORD_LIMIT = 512


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _candidates(values: Iterable[str]) -> Iterator[str]:
    """Every word of ``values`` that could be a path, ``--opt=value`` values included."""
    count = 0
    for value in values:
        for word in _WORD.findall(value):
            for part in (word, *word.split("=")[1:]):
                count += 1
                if count > _WORD_LIMIT:
                    return
                yield part


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def read_gates(
    tool_input: Mapping[str, Any],
    start: str | None,
    private: Sequence[str],
    own: Sequence[str],
    home: str | None = None,
) -> list[GateHit]:
    """Paths anywhere in a tool call's input (shell words included) that resolve inside a
    ``private`` root (the data directory) but not inside one of the run's ``own`` worktrees.

    Every string of the input is split into words; ``~`` and ``$HOME`` are expanded, relative
    words resolve from ``start`` and symlinks are followed, so ``../../admin.token`` and a
    link in the worktree are caught as well as the absolute path.
    """
    if not private:
        return []
    roots = [os.path.realpath(p) for p in private]
    mine = [os.path.realpath(p) for p in own]
    home = home or os.path.expanduser("~")
    base = start or (mine[0] if mine else os.getcwd())
    for word in _candidates(_strings(tool_input)):
        expanded = _HOME_VAR.sub(lambda _: home, word, count=1)
        if "$" in expanded:
            continue  # another variable: unknown until it runs (the sandbox still hides it)
        real = os.path.realpath(os.path.join(base, expanded))
        if any(_inside(real, r) for r in roots) and not any(_inside(real, m) for m in mine):
            return [
                GateHit(
                    "read-private",
                    f"`{word}` is inside Codeyard's data directory or another run's worktree, "
                    "which no agent may read",
                )
            ]
    return []
