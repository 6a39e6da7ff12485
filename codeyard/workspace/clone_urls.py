"""Clone URLs a client gives: network transports only, credentials never stored or shown.

Git understands far more than network URLs: ``fd::17`` and ``ext::sh -c …`` run commands or
read the server's file descriptors, ``file://`` and plain paths read the server's disk. A
project registered by URL may only name a network remote (https, http, ssh, git, or the
``user@host:path`` form); local repositories are registered by ``path``. A URL's user name and
password are removed before the URL is stored (the clone keeps only the bare URL as its
``origin``) and every message that quotes the URL shows ``***`` instead of them; keep
credentials in an env set or git's credential helper.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from codeyard.domain.errors import BadRequest

__all__ = ["NETWORK_SCHEMES", "CloneUrl", "parse_clone_url", "redact"]

NETWORK_SCHEMES = ("https", "http", "ssh", "git")
#: ``[user@]host:path`` (git's scp-like syntax): no slash before the first colon.
_SCP_LIKE = re.compile(r"\A(?:[^@/:\s]+@)?[A-Za-z0-9][A-Za-z0-9.-]*:")
REDACTED = "***"


@dataclass(frozen=True, slots=True)
class CloneUrl:
    """``clone``: what git is given; ``stored``: without credentials; ``secrets``: to redact."""

    clone: str
    stored: str
    secrets: tuple[str, ...]

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)


#: Shorter secrets are redacted only where they stand as credentials (``user:pass@``), so a
#: one-letter user name does not blank out every such letter of a message.
_MIN_BARE_SECRET = 4


def redact(text: str, secrets: tuple[str, ...] | list[str]) -> str:
    """``text`` with each credential replaced by ``***``."""
    text = re.sub(r"(?<=//)[^/@\s]+@", f"{REDACTED}@", text) if secrets else text
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _MIN_BARE_SECRET:
            text = text.replace(secret, REDACTED)
    return text


def _refuse(url: str, why: str) -> BadRequest:
    shown = re.sub(r"//[^/@]*@", f"//{REDACTED}@", url)
    return BadRequest(
        f"'{shown}' cannot be cloned: {why}. Use an https:// or ssh:// URL (or user@host:path), "
        "or register a local repository with 'path'.",
    )


def parse_clone_url(url: str) -> CloneUrl:
    """Validate ``url`` as a network remote and split off its credentials (400 otherwise)."""
    text = url.strip()
    if not text or any(c.isspace() or ord(c) < 32 for c in text):
        raise _refuse(url, "it is empty or contains spaces or control characters")
    if text.startswith("-"):
        raise _refuse(url, "it starts with '-'")
    if "::" in text.split("/", 1)[0]:
        raise _refuse(url, "'<transport>::' URLs (fd::, ext::, …) run local helpers")
    if "://" not in text:
        match = _SCP_LIKE.match(text)
        if match is None:
            raise _refuse(url, "it is a local path, not a network URL")
        return CloneUrl(text, text, ())  # ssh: a user name, never a password
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in NETWORK_SCHEMES:
        raise _refuse(url, f"the '{scheme}' transport is not a network transport")
    host = parts.hostname or ""
    if not host or host.startswith("-"):
        raise _refuse(url, "it names no host")
    secrets = tuple(s for s in (parts.password, parts.username) if s)
    if scheme == "ssh":  # ssh://git@host/…: the user name is not a secret
        secrets = tuple(s for s in (parts.password,) if s)
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    if ":" in host:  # an IPv6 literal
        netloc = f"[{host}]" if parts.port is None else f"[{host}]:{parts.port}"
    if scheme == "ssh" and parts.username:
        netloc = f"{parts.username}@{netloc}"
    stored = urlunsplit((scheme, netloc, parts.path, parts.query, ""))
    return CloneUrl(text, stored, secrets)
