"""Git identity rules without I/O: defaults from the username, the four variables, and what
git would refuse or mangle."""

from __future__ import annotations

from codeyard.domain import git_identity as gi


def test_defaults_are_made_from_the_username() -> None:
    assert gi.for_user(None) == gi.CODEYARD
    user = {"username": "Ana Lima!", "git_name": None, "git_email": None}
    assert gi.for_user(user) == gi.GitIdentity("Ana Lima!", "Ana-Lima@users.codeyard.invalid")
    mine = {"username": "ana", "git_name": "Ana L", "git_email": "ana@example.com"}
    assert gi.for_user(mine) == gi.GitIdentity("Ana L", "ana@example.com")
    assert gi.for_user({"username": "ana", "git_email": "a@b.c"}).name == "ana"


def test_author_and_committer_are_both_set() -> None:
    env = gi.env(gi.GitIdentity("A", "a@x.y"))
    assert env == {
        "GIT_AUTHOR_NAME": "A",
        "GIT_AUTHOR_EMAIL": "a@x.y",
        "GIT_COMMITTER_NAME": "A",
        "GIT_COMMITTER_EMAIL": "a@x.y",
    }


def test_unusable_names_and_emails_are_named() -> None:
    assert gi.problem_with("Ana", "ana@example.com") is None
    assert gi.problem_with(None, None) is None
    assert gi.problem_with("Ana <a@b>", None) == (
        "name",
        "A git name needs a visible character and no '<', '>' or line breaks.",
    )
    assert gi.problem_with("two\nlines", None) is not None
    assert gi.problem_with("   ", None) is not None
    for email in ("ana", "ana at x", "<ana@x>", "a@b@c"):
        found = gi.problem_with(None, email)
        assert found is not None and found[0] == "email", email
