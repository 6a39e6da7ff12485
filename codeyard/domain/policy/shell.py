"""Split a shell command line into the simple commands it would run.

Why: rules and hard gates judge every command a line runs (``a && b | c``, ``$(…)``, backticks,
subshells, ``bash -c '…'``, ``sudo …``, ``find -exec …``), so ``ls && git push --force`` cannot
hide behind an allowed ``ls``. The parser is deliberately partial: whatever it cannot read with
certainty (unbalanced quotes, ``eval``, process substitution, ``case``, function definitions,
ANSI-C escapes, a command whose name is an expansion, heredocs whose body expands commands)
makes :func:`split` return ``None``, and the engine never allows such a line by rule.
"""

from __future__ import annotations

import re

from codeyard.domain.policy.commands import Redirect, SimpleCommand, Unparseable, Word
from codeyard.domain.policy.launchers import MAX_DEPTH, launched

__all__ = ["Redirect", "SimpleCommand", "Word", "split"]


#: One token at list level (anything else starts a word). Order matters: `<(` before `<`.
_TOKEN = re.compile(
    r"(?P<blank>(?:[ \t]|\\\n)+)"
    r"|(?P<newline>\n)"
    r"|(?P<comment>\#[^\n]*)"
    r"|(?P<procsub>[<>]\()"
    r"|(?P<redirect>(?P<fd>\d*)(?P<op>&>>|&>|>>|>&|>\||<<<|<<-|<<|<>|<&|>|<))"
    r"|(?P<control>&&|\|\||\|&|;;&|;;|;&|[;&|])"
    r"|(?P<open>\()"
    r"|(?P<close>\))"
)
_META = frozenset(" \t\n;&|()<>")
_PLAIN = re.compile(r"[^ \t\n;&|()<>'\"\\$`]+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9?#@*$!-]")
_BRACES = re.compile(r"\{[^{}]*(,|\.\.)[^{}]*\}")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=")
#: Reserved words that only introduce or close a compound command; the rest is still a command.
_SKIP_KEYWORDS = frozenset(
    {
        "if",
        "then",
        "else",
        "elif",
        "fi",
        "do",
        "done",
        "while",
        "until",
        "!",
        "{",
        "}",
        "esac",
        "time",
        "-p",
    }
)
_REFUSE = frozenset({"case", "function", "coproc", "eval", "select", "trap"})


def split(line: str) -> list[SimpleCommand] | None:
    """Every simple command ``line`` would run, in order, or None when it cannot be read safely.

    Command substitutions come before the command that uses them; commands started by launchers
    (``sudo``, ``env``, ``timeout``, ``xargs``, ``bash -c``, ``find -exec``, ``VAR=1 cmd`` …) are
    listed again right after their launcher, as commands of their own.
    """
    try:
        return _Parser(line, 0).parse()
    except (Unparseable, RecursionError):
        return None


class _Parser:
    def __init__(self, src: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise Unparseable("nested too deeply")
        self.s = src
        self.i = 0
        self.base = depth
        self.out: list[SimpleCommand] = []
        self.heredocs: list[tuple[str, bool, bool]] = []  # (delimiter, quoted, strip tabs)

    def parse(self) -> list[SimpleCommand]:
        self._list(None, self.base)
        if self.heredocs:
            raise Unparseable("heredoc without body")
        return self.out

    # -- lists of commands -------------------------------------------------------------------

    def _list(self, close: str | None, depth: int) -> None:
        s = self.s
        argv: list[Word] = []
        assigns: list[Word] = []
        redirects: list[Redirect] = []

        def flush() -> None:
            self._emit(argv, assigns, redirects, depth)
            argv.clear()
            assigns.clear()
            redirects.clear()

        while True:
            m = _TOKEN.match(s, self.i)
            if m is None:
                if self.i >= len(s):
                    if close:
                        raise Unparseable(f"missing '{close}'")
                    flush()
                    return
                word = self._word(depth)
                if not argv and _ASSIGNMENT.match(word.text):
                    assigns.append(word)
                else:
                    argv.append(word)
                continue
            self.i = m.end()
            kind = m.lastgroup
            if kind == "newline":
                flush()
                self._heredoc_bodies()
            elif kind == "close":
                if close != ")":
                    raise Unparseable("unbalanced ')'")
                flush()
                return
            elif kind == "open":
                if argv or assigns:
                    raise Unparseable("function definitions and extended globs are not read")
                self._list(")", depth + 1)
            elif kind == "procsub":
                raise Unparseable("process substitution")
            elif kind == "redirect":
                redirects.append(self._redirect(m.group("fd"), m.group("op"), depth))
            elif kind == "control":
                if m.group() in (";;", ";&", ";;&"):
                    raise Unparseable("case clauses are not read")
                flush()
            # blanks, line continuations and comments: nothing to do

    def _redirect(self, fd: str, op: str, depth: int) -> Redirect:
        self._blanks()
        start = self.i
        target = self._word(depth)
        if op in ("<<", "<<-"):
            if target.dynamic:
                raise Unparseable("heredoc delimiter is an expansion")
            quoted = any(q in self.s[start : self.i] for q in "'\"\\")
            self.heredocs.append((target.text, quoted, op == "<<-"))
            op = "<<"
        return Redirect(op, target, fd)

    def _heredoc_bodies(self) -> None:
        s = self.s
        for delimiter, quoted, strip in self.heredocs:
            while True:
                if self.i >= len(s):
                    raise Unparseable(f"heredoc '{delimiter}' is not closed")
                end = s.find("\n", self.i)
                end = len(s) if end < 0 else end
                line = s[self.i : end]
                self.i = min(end + 1, len(s))
                if (line.lstrip("\t") if strip else line) == delimiter:
                    break
                if not quoted and ("$(" in line or "`" in line):
                    raise Unparseable("heredoc body runs commands")
        self.heredocs.clear()

    def _emit(
        self, argv: list[Word], assigns: list[Word], redirects: list[Redirect], depth: int
    ) -> None:
        words = list(argv)
        while words and not words[0].dynamic and words[0].text in _SKIP_KEYWORDS:
            words.pop(0)
        if words and not words[0].dynamic and words[0].text == "for":
            words = []  # `for x in …`: the loop header runs nothing (substitutions already seen)
        if not (words or assigns or redirects):
            return
        self._add(SimpleCommand(tuple(words), tuple(assigns), tuple(redirects), depth))

    def _add(self, cmd: SimpleCommand) -> None:
        """Record ``cmd`` and, after it, whatever it launches."""
        if cmd.argv:
            if cmd.argv[0].dynamic:
                raise Unparseable("the command name is an expansion")
            if cmd.name in _REFUSE:
                raise Unparseable(f"'{cmd.name}' is not read")
        self.out.append(cmd)
        argvs, scripts = launched(cmd.argv, bool(cmd.assignments))
        for argv in argvs:
            self._add(SimpleCommand(argv, depth=cmd.depth))
        for script in scripts:
            self.out.extend(_Parser(script, cmd.depth + 1).parse())

    # -- words -------------------------------------------------------------------------------

    def _blanks(self) -> None:
        while self.s[self.i : self.i + 1] in (" ", "\t") and self.i < len(self.s):
            self.i += 1

    def _word(self, depth: int) -> Word:
        s = self.s
        start = self.i
        fast = _PLAIN.match(s, start)
        if fast and (fast.end() == len(s) or s[fast.end()] in _META):
            self.i = fast.end()  # the common case: one unquoted run
            run = fast.group()
            return Word(run, run.startswith("~") or ("{" in run and bool(_BRACES.search(run))))
        text: list[str] = []
        plain: list[str] = []  # unquoted literal characters, for brace expansion
        dynamic = False
        while self.i < len(s) and s[self.i] not in _META:
            c = s[self.i]
            if c == "'":
                end = s.find("'", self.i + 1)
                if end < 0:
                    raise Unparseable("unbalanced single quote")
                text.append(s[self.i + 1 : end])
                self.i = end + 1
            elif c == '"':
                self.i += 1
                dynamic |= self._double_quoted(text, depth)
            elif c == "\\":
                if self.i + 1 >= len(s):
                    raise Unparseable("trailing backslash")
                if s[self.i + 1] != "\n":
                    text.append(s[self.i + 1])
                self.i += 2
            elif c in "$`":
                part, expands = self._expansion(depth, quoted=False)
                text.append(part)
                dynamic |= expands
            else:
                m = _PLAIN.match(s, self.i)
                assert m is not None  # `c` itself is plain
                dynamic |= c == "~" and self.i == start
                plain.append(m.group())
                text.append(m.group())
                self.i = m.end()
        if self.i == start:
            raise Unparseable(f"unexpected {s[self.i : self.i + 1]!r}")
        dynamic |= bool(_BRACES.search("".join(plain)))
        return Word("".join(text), dynamic)

    def _double_quoted(self, text: list[str], depth: int) -> bool:
        s = self.s
        dynamic = False
        while True:
            if self.i >= len(s):
                raise Unparseable("unbalanced double quote")
            c = s[self.i]
            if c == '"':
                self.i += 1
                return dynamic
            if c == "\\" and s[self.i + 1 : self.i + 2] in ("$", "`", '"', "\\", "\n"):
                if s[self.i + 1] != "\n":
                    text.append(s[self.i + 1])
                self.i += 2
            elif c in "$`":
                part, expands = self._expansion(depth, quoted=True)
                text.append(part)
                dynamic |= expands
            else:
                text.append(c)
                self.i += 1

    def _expansion(self, depth: int, quoted: bool) -> tuple[str, bool]:
        """Consume one ``$…`` or backtick expansion, parsing any commands it runs.

        Returns its text as written and whether it expands (a lone ``$`` or ``$'…'`` does not).
        """
        s = self.s
        start = self.i
        if s[start] == "`":
            end = start + 1
            while end < len(s) and s[end] != "`":
                end += 2 if s[end] == "\\" else 1
            if end >= len(s):
                raise Unparseable("unbalanced backtick")
            inner = re.sub(r"\\([`$\\])", r"\1", s[start + 1 : end])
            self.out.extend(_Parser(inner, depth + 1).parse())
            self.i = end + 1
            return s[start : self.i], True
        nxt = s[start + 1 : start + 2]
        if s.startswith("$((", start):
            self.i = self._closing(start + 3, "(", ")", 2)
        elif nxt == "(":
            self.i = start + 2
            self._list(")", depth + 1)
        elif nxt == "{":
            self.i = self._closing(start + 2, "{", "}", 1)
        elif nxt == "'" and not quoted:
            end = s.find("'", start + 2)
            if end < 0 or "\\" in s[start + 2 : end]:
                raise Unparseable("ANSI-C quoting with escapes is not read")
            self.i = end + 1
            return s[start + 2 : end], False
        elif m := _NAME.match(s, start + 1):
            self.i = m.end()
        else:
            self.i = start + 1
            return "$", False  # a lone `$` is literal
        return s[start : self.i], True

    def _closing(self, pos: int, opening: str, closing: str, count: int) -> int:
        """End of a ``${…}`` / ``$((…))`` that runs no commands (else the line is refused)."""
        level = count
        s = self.s
        while pos < len(s):
            c = s[pos]
            if c in "`'\"" or s.startswith("$(", pos):
                raise Unparseable("nested expansion inside ${…} or $((…))")
            level += (c == opening) - (c == closing)
            pos += 1
            if level == 0:
                return pos
        raise Unparseable(f"missing '{closing}'")
