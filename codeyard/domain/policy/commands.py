"""Simple shell commands as data: what the shell parser produces and rules and gates read."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from codeyard.domain.policy.paths import Place, Resolver

__all__ = ["Redirect", "SimpleCommand", "Unparseable", "Word", "command_places", "operands", "walk"]


class Unparseable(Exception):
    """A command line (or part of one) that cannot be read with certainty."""


@dataclass(frozen=True, slots=True)
class Word:
    """One shell word with quotes removed; expansions are kept as written (``$HOME``, ``$(…)``)."""

    text: str
    #: The shell expands it (variables, substitutions, ``~``, braces): its value is unknown here.
    dynamic: bool = False


@dataclass(frozen=True, slots=True)
class Redirect:
    op: str  # ">", ">>", ">|", "&>", "&>>", ">&", "<", "<>", "<&", "<<", "<<<"
    target: Word
    fd: str = ""

    @property
    def duplicates(self) -> bool:
        """``2>&1``, ``>&2``, ``<&-``: moves a file descriptor, names no file."""
        return self.op in (">&", "<&") and (self.target.text.isdigit() or self.target.text == "-")

    @property
    def writes(self) -> bool:
        return self.op in (">", ">>", ">|", "&>", "&>>", ">&", "<>") and not self.duplicates


@dataclass(frozen=True, slots=True)
class SimpleCommand:
    argv: tuple[Word, ...]
    assignments: tuple[Word, ...] = ()
    redirects: tuple[Redirect, ...] = ()
    #: Subshell / substitution nesting: a ``cd`` at depth > 0 does not change the outer directory.
    depth: int = 0

    @property
    def name(self) -> str:
        """The program's base name (``/usr/bin/git`` → ``git``)."""
        return self.argv[0].text.rsplit("/", 1)[-1] if self.argv else ""

    @property
    def text(self) -> str:
        """What command rules match: assignments, words and file redirections, space-joined."""
        parts = [w.text for w in (*self.assignments, *self.argv)]
        parts += [f"{r.fd}{r.op} {r.target.text}" for r in self.redirects if not r.duplicates]
        return " ".join(parts)


def operands(argv: Sequence[Word]) -> tuple[list[str], list[Word]]:
    """Options and operands after the command name (GNU style: options may follow operands,
    ``--`` ends them). An expansion is an operand: its value is unknown."""
    flags: list[str] = []
    found: list[Word] = []
    ended = False
    for word in argv[1:]:
        if not ended and not word.dynamic and word.text == "--":
            ended = True
        elif not ended and not word.dynamic and word.text.startswith("-") and word.text != "-":
            flags.append(word.text)
        else:
            found.append(word)
    return flags, found


def walk(
    commands: Sequence[SimpleCommand], start: str | None, resolve: Resolver
) -> Iterator[tuple[SimpleCommand, str | None]]:
    """Each command with the directory it runs in (None: unknown).

    ``cd``/``pushd`` are followed at the top level. One inside a subshell or substitution, to an
    expansion, ``-`` or home, and any ``popd``, makes the directory unknown from there on:
    imprecise in the safe direction.
    """
    cwd = start
    for cmd in commands:
        yield cmd, cwd
        if cmd.name in ("cd", "pushd", "popd"):
            _, args = operands(cmd.argv)
            if cmd.depth > 0 or cmd.name == "popd" or len(args) != 1 or args[0].text == "-":
                cwd = None
            else:
                cwd = resolve(args[0].text, cwd, known=not args[0].dynamic).real


def command_places(cmd: SimpleCommand, cwd: str | None, resolve: Resolver) -> list[Place]:
    """The paths a simple command may touch, for ``path`` rules: every operand (and the value of
    ``--opt=value``) and every redirection target. Over-inclusive on purpose: an ``allow`` needs
    all of them to match, a ``deny`` any one."""
    flags, words = operands(cmd.argv)
    words += [Word(f.split("=", 1)[1]) for f in flags if f.startswith("--") and "=" in f]
    words += [r.target for r in cmd.redirects if not r.duplicates]
    return [resolve(w.text, cwd, known=not w.dynamic) for w in words]
