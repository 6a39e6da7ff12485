"""The shell reader: which simple commands a line runs, and which lines it refuses to read."""

from __future__ import annotations

import pytest

from codeyard.domain.policy.paths import command_line
from codeyard.domain.policy.shell import split


def texts(line: str) -> list[str] | None:
    commands = split(line)
    return None if commands is None else [c.text for c in commands]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("ls", ["ls"]),
        ("ls -la src", ["ls -la src"]),
        ("  ls   -la  ", ["ls -la"]),
        ("a && b || c", ["a", "b", "c"]),
        ("a | b |& c", ["a", "b", "c"]),
        ("a; b & c", ["a", "b", "c"]),
        ("a\nb\n\nc", ["a", "b", "c"]),
        ("a \\\n  --flag", ["a --flag"]),
        ("(cd sub && make) || true", ["cd sub", "make", "true"]),
        ("{ a; b; } > out", ["a", "b", "> out"]),
        ("echo $(git rev-parse HEAD)", ["git rev-parse HEAD", "echo $(git rev-parse HEAD)"]),
        ("echo `whoami`", ["whoami", "echo `whoami`"]),
        ('echo "$(a "$(b)")"', ["b", "a $(b)", 'echo $(a "$(b)")']),
        ("x=$(date) make", ["date", "x=$(date) make", "make"]),
        ("FOO=1 BAR=2", ["FOO=1 BAR=2"]),
        # Quotes are removed: `"rm" -rf` is `rm -rf` for rules and gates.
        ("\"rm\" '-rf' a\\ b", ["rm -rf a b"]),
        ("echo 'a && b' \"c; d\"", ["echo a && b c; d"]),
        ("echo a#b # a comment", ["echo a#b"]),
        ("# only a comment", []),
        ("", []),
        # Redirections are part of the text; descriptor moves are not.
        ("make 2>&1 | tee log.txt", ["make", "tee log.txt"]),
        ("echo hi > out.txt 2> err.txt", ["echo hi > out.txt 2> err.txt"]),
        ("cat < in >> out", ["cat < in >> out"]),
        ("cmd &> all.log", ["cmd &> all.log"]),
        ("cat <<< 'some text'", ["cat <<< some text"]),
        # Compound commands: keywords are dropped, the commands inside remain.
        ("if test -f x; then rm x; else touch x; fi", ["test -f x", "rm x", "touch x"]),
        ("while read l; do echo $l; done < f", ["read l", "echo $l", "< f"]),
        ("for f in $(ls); do black $f; done", ["ls", "black $f"]),
        ("! grep -q x f", ["grep -q x f"]),
        ("time -p make", ["make"]),
        # Launchers: what they start is listed again, as a command of its own.
        ("sudo -u root rm -rf /", ["sudo -u root rm -rf /", "rm -rf /"]),
        ("env -i A=1 git push", ["env -i A=1 git push", "git push"]),
        ("timeout -s KILL 60 npm test", ["timeout -s KILL 60 npm test", "npm test"]),
        ("nice -n 5 nohup make", ["nice -n 5 nohup make", "nohup make", "make"]),
        ("xargs -0 rm -f", ["xargs -0 rm -f", "rm -f {}"]),
        ("xargs -I % cp % dst", ["xargs -I % cp % dst", "cp % dst"]),
        ("find . -name '*.o' -exec rm {} \\;", ["find . -name *.o -exec rm {} ;", "rm {}"]),
        ("bash -c 'a && b'", ["bash -c a && b", "a", "b"]),
        ('sh -lc "cd /; rm -rf x"', ["sh -lc cd /; rm -rf x", "cd /", "rm -rf x"]),
        ("bash script.sh", ["bash script.sh"]),
        ("su -c 'id' root", ["su -c id root", "id"]),
        ("watch -n 2 git status", ["watch -n 2 git status", "git status"]),
        ("command -v git", ["command -v git"]),
        # Heredocs: the body is data, not commands.
        ("cat <<'EOF' > f\n$(not run)\nEOF\necho done", ["cat << EOF > f", "echo done"]),
        ("cat <<-EOF\n\tplain text\n\tEOF\n", ["cat << EOF"]),
        (
            "git commit -m \"$(cat <<'EOF'\nfix: things\n\nbody\nEOF\n)\"",
            ["cat << EOF", "git commit -m $(cat <<'EOF'\nfix: things\n\nbody\nEOF\n)"],
        ),
        ("echo $((1 + 2))", ["echo $((1 + 2))"]),
        ("echo ${HOME:-x}", ["echo ${HOME:-x}"]),
        ("echo $'plain'", ["echo plain"]),
        ('echo "costs $"', ["echo costs $"]),
    ],
)
def test_split(line: str, expected: list[str]) -> None:
    assert texts(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "echo 'unbalanced",
        'echo "unbalanced',
        "echo `unbalanced",
        "echo $(unbalanced",
        "a )",
        "echo trailing\\",
        "eval 'git push -f'",
        "sudo eval x",
        'bash -c "$CMD"',
        'env -S "$X"',
        "$CMD arg",
        '"$(which git)" push',
        "cat <(ls)",
        "diff <(a) >(b)",
        "case $x in a) rm -rf /;; esac",
        "f() { rm -rf /; }",
        "function f { x; }",
        "coproc x",
        "select x in a b; do y; done",
        "echo $'\\x72m'",
        "cat <<EOF\n$(rm -rf /)\nEOF",
        "cat <<EOF\n`rm -rf /`\nEOF",
        "cat <<EOF\nnever closed",
        "cat <<EOF",
        "echo ${x:-$(rm -rf /)}",
        "echo $(( $(id -u) + 1 ))",
        "x=1 f() { :; }",
        "ls @(a|b)",
        "echo " + "$(" * 40 + "x" + ")" * 40,
    ],
)
def test_refuses_what_it_cannot_read(line: str) -> None:
    assert split(line) is None


def test_words_know_whether_they_expand() -> None:
    commands = split("rm -rf \"$DIR\" ~/x a{b,c} {} 'lit$' plain")
    assert commands is not None
    words = commands[0].argv
    assert [(w.text, w.dynamic) for w in words] == [
        ("rm", False),
        ("-rf", False),
        ("$DIR", True),
        ("~/x", True),
        ("a{b,c}", True),
        ("{}", False),
        ("lit$", False),
        ("plain", False),
    ]


def test_depth_marks_subshells_and_substitutions() -> None:
    commands = split("cd a && (cd b; x) && echo $(cd c)")
    assert commands is not None
    assert [(c.text, c.depth) for c in commands] == [
        ("cd a", 0),
        ("cd b", 1),
        ("x", 1),
        ("cd c", 1),
        ("echo $(cd c)", 0),
    ]


def test_redirections_are_typed() -> None:
    commands = split("cmd > a 2>&1 >> b < c &> d >&2 2>/dev/null")
    assert commands is not None
    redirects = commands[0].redirects
    assert [(r.fd, r.op, r.target.text, r.writes) for r in redirects] == [
        ("", ">", "a", True),
        ("2", ">&", "1", False),
        ("", ">>", "b", True),
        ("", "<", "c", False),
        ("", "&>", "d", True),
        ("", ">&", "2", False),
        ("2", ">", "/dev/null", True),
    ]


def test_argument_vectors_from_codex_are_joined_safely() -> None:
    line = command_line({"command": ["bash", "-lc", "git status && rm -rf 'a b'"]})
    assert line is not None
    assert texts(line) == [
        "bash -lc git status && rm -rf 'a b'",
        "git status",
        "rm -rf a b",
    ]
    assert command_line({"command": 42}) == ""
    assert command_line({"other": "x"}) is None
