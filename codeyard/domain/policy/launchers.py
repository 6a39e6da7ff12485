"""Commands that run other commands: ``sudo git …``, ``timeout 5 rm …``, ``bash -c '…'``.

Why: a rule or gate about ``rm`` must also see the ``rm`` in ``sudo rm`` or ``find -exec rm``.
The launched command is listed as a command of its own, so an ``allow`` needs both the launcher
and what it launches to be allowed, and a ``deny`` of either wins.
"""

from __future__ import annotations

import re

from codeyard.domain.policy.commands import Unparseable, Word

__all__ = ["MAX_DEPTH", "launched"]

#: How deeply ``bash -c "sh -c '…'"`` and ``$( $( … ) )`` may nest before a line is refused.
MAX_DEPTH = 12

Argv = tuple[Word, ...]


def _opts(spec: str) -> frozenset[str]:
    return frozenset(spec.split())


#: Launcher → (options that take a value, positional arguments before the command).
_WRAPPERS: dict[str, tuple[frozenset[str], int]] = {
    "sudo": (
        _opts(
            "-u -g -C -D -h -p -r -t -U -T --user --group --chdir --prompt --host --role --type"
            " --other-user --close-from --command-timeout"
        ),
        0,
    ),
    "doas": (_opts("-u -C"), 0),
    "env": (_opts("-u --unset -C --chdir"), 0),
    "nice": (_opts("-n --adjustment"), 0),
    "ionice": (_opts("-c -n -p --class --classdata"), 0),
    "timeout": (_opts("-s --signal -k --kill-after"), 1),
    "time": (_opts("-f -o --format --output"), 0),
    "stdbuf": (_opts("-i -o -e"), 0),
    "exec": (_opts("-a"), 0),
    "xargs": (
        _opts(
            "-I -L -n -P -d -E -s -a --arg-file --delimiter --max-args --max-procs --max-lines"
            " --max-chars --eof --process-slot-var"
        ),
        0,
    ),
    "flock": (_opts("-w --timeout -E --conflict-exit-code"), 1),
    "caffeinate": (_opts("-t -w"), 0),
    **{name: (frozenset(), 0) for name in _opts("nohup command builtin setsid chronic unbuffer")},
}
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "ash", "mksh"})
_SHELL_OPTIONS_WITH_VALUE = frozenset({"-o", "+o", "-O", "+O", "--rcfile", "--init-file"})
_EXEC_FLAGS = frozenset({"-exec", "-execdir", "-ok", "-okdir"})
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def launched(argv: Argv, has_assignments: bool) -> tuple[list[Argv], list[str]]:
    """What ``argv`` starts: argument vectors to check, and shell scripts to parse.

    ``VAR=1 cmd`` launches ``cmd`` (so a rule anchored on ``^cmd`` still sees it).
    """
    if not argv:
        return [], []
    if has_assignments:
        return [argv], []
    name = argv[0].text.rsplit("/", 1)[-1]
    if name in _WRAPPERS:
        inner = _unwrap(name, argv[1:])
        if name == "xargs" and inner:
            inner = _xargs_input(argv[1:], inner)
        return ([inner] if inner else []), []
    if name in _SHELLS:
        return [], _shell_script(argv[1:])
    if name == "su":
        return [], _option_value(argv[1:], ("-c", "--command"))
    if name == "watch":
        return [], _watch_script(argv[1:])
    if name == "find":
        return _find_exec(argv[1:]), []
    return [], []


def _unwrap(name: str, args: Argv) -> Argv:
    with_value, positionals = _WRAPPERS[name]
    i = 0
    while i < len(args):
        text = args[i].text
        if text == "--":
            i += 1
            break
        if name in ("env", "sudo") and _ASSIGNMENT.match(text):
            i += 1
        elif name == "command" and text in ("-v", "-V"):
            return ()  # `command -v git` only looks git up
        elif text.startswith("-") and len(text) > 1 and not args[i].dynamic:
            if name == "env" and text.split("=", 1)[0] in ("-S", "--split-string"):
                # `env -S 'cmd args'` splits a string into a command: read it as a script.
                return _script_argv(args[i + 1 :] if text in ("-S", "--split-string") else args[i:])
            i += 2 if text in with_value else 1
        else:
            break
    rest = args[i + positionals :] if positionals else args[i:]
    if name in ("env", "sudo"):
        while rest and _ASSIGNMENT.match(rest[0].text):
            rest = rest[1:]
    return rest


def _xargs_input(args: Argv, inner: Argv) -> Argv:
    """xargs adds words read from its input: placeholders we cannot know (``{}``)."""
    replace = None
    for i, word in enumerate(args[: len(args) - len(inner)]):
        text = word.text
        if text == "-I" and i + 1 < len(args):
            replace = args[i + 1].text
        elif text.startswith("-I") and len(text) > 2:
            replace = text[2:]
        elif text.startswith("--replace"):
            replace = text.split("=", 1)[1] if "=" in text else "{}"
        elif text == "-i":
            replace = "{}"
    if replace:
        return tuple(Word(w.text, True) if replace in w.text else w for w in inner)
    return (*inner, Word("{}", True))


def _script_argv(args: Argv) -> Argv:
    """``env -S`` splits its string on blanks: good enough to find the command name."""
    text = args[0].text.split() if args else []
    return tuple(Word(t, args[0].dynamic) for t in text) + args[1:]


def _shell_script(args: Argv) -> list[str]:
    """The ``-c`` script of ``bash -lc 'script' arg0 …`` (empty when the shell reads a file)."""
    has_c = False
    i = 0
    while i < len(args):
        text = args[i].text
        if text == "--" or not text.startswith(("-", "+")) or len(text) == 1:
            break
        if text in _SHELL_OPTIONS_WITH_VALUE:
            i += 2
            continue
        has_c |= not text.startswith("--") and "c" in text[1:]
        i += 1
    if not has_c:
        return []
    if i < len(args) and args[i].text == "--":
        i += 1
    return [_static(args[i])] if i < len(args) else []


def _option_value(args: Argv, names: tuple[str, ...]) -> list[str]:
    for i, word in enumerate(args):
        if word.text in names and i + 1 < len(args):
            return [_static(args[i + 1])]
        for n in names:
            if n.startswith("--") and word.text.startswith(n + "="):
                return [_static(Word(word.text[len(n) + 1 :], word.dynamic))]
    return []


def _watch_script(args: Argv) -> list[str]:
    """``watch -n 5 git status``: watch joins its arguments and hands them to ``sh -c``."""
    i = 0
    while i < len(args) and args[i].text.startswith("-"):
        i += 2 if args[i].text in ("-n", "--interval") else 1
    return [" ".join(_static(w) for w in args[i:])] if args[i:] else []


def _find_exec(args: Argv) -> list[Argv]:
    """``find … -exec cmd {} ;`` runs ``cmd`` once per file (``{}``: a path we cannot know)."""
    out: list[Argv] = []
    i = 0
    while i < len(args):
        if args[i].text in _EXEC_FLAGS:
            j = i + 1
            while j < len(args) and args[j].text not in (";", "+"):
                j += 1
            inner = tuple(Word(w.text, True) if "{}" in w.text else w for w in args[i + 1 : j])
            if inner:
                out.append(inner)
            i = j
        i += 1
    return out


def _static(word: Word) -> str:
    """A script must be known to be read; an expansion could be anything."""
    if word.dynamic:
        raise Unparseable("a shell script given as an expansion")
    return word.text
