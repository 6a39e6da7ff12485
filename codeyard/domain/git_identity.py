"""Who the commits of a user's runs are by: the user's own git identity, else one made from the
username, else Codeyard's.

Why always explicit: git takes a missing identity from the server account's ``~/.gitconfig``,
so on a machine without one every agent commit and landing failed ("please tell me who you
are"), and on a machine with one every user's commits carried the server's name. The four
``GIT_AUTHOR_*``/``GIT_COMMITTER_*`` variables take precedence over any config file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Made-up addresses use the reserved ``.invalid`` domain: they can never reach anyone.
DEFAULT_DOMAIN = "users.codeyard.invalid"
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
#: git refuses or mangles these in an identity (angle brackets delimit the address).
_BAD_NAME = re.compile(r"[<>\n\r\0]")


@dataclass(frozen=True, slots=True)
class GitIdentity:
    name: str
    email: str


#: Runs nobody signed in for (the admin token, scripts with it).
CODEYARD = GitIdentity("Codeyard", "codeyard@localhost")


def for_user(user: Mapping[str, Any] | None) -> GitIdentity:
    """The user's own name and email where set, each else made from the username."""
    if user is None:
        return CODEYARD
    username = str(user["username"])
    local = re.sub(r"[^A-Za-z0-9._+-]", "-", username).strip(".-") or "user"
    return GitIdentity(
        str(user.get("git_name") or username),
        str(user.get("git_email") or f"{local}@{DEFAULT_DOMAIN}"),
    )


def env(identity: GitIdentity) -> dict[str, str]:
    """The variables that make git use ``identity`` for author and committer."""
    return {
        "GIT_AUTHOR_NAME": identity.name,
        "GIT_AUTHOR_EMAIL": identity.email,
        "GIT_COMMITTER_NAME": identity.name,
        "GIT_COMMITTER_EMAIL": identity.email,
    }


def problem_with(name: str | None, email: str | None) -> tuple[str, str] | None:
    """``(field, reason)`` when a name or email would not make a usable git identity."""
    if name is not None and (not name.strip() or _BAD_NAME.search(name)):
        return "name", "A git name needs a visible character and no '<', '>' or line breaks."
    if email is not None and not _EMAIL.match(email):
        return "email", "A git email looks like name@example.com (no spaces or '<', '>')."
    return None
