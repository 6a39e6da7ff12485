"""Clone URLs: network transports only, credentials split off for storing and redacting."""

from __future__ import annotations

import pytest

from codeyard.domain.errors import BadRequest
from codeyard.workspace.clone_urls import parse_clone_url


@pytest.mark.parametrize(
    "url",
    [
        "fd::17",
        "ext::sh -c touch% /tmp/pwned",
        "ext::git-upload-pack",
        "file:///etc",
        "FILE:///srv/repo.git",
        "/srv/repo.git",
        "./repo",
        "../repo",
        "repo",
        "-uhelp",
        "--upload-pack=touch /tmp/x",
        "ssh://-oProxyCommand=touch%20x/repo",
        "https://",
        "http:// spaces.example/repo",
        "foo::bar",
        "https::https://example.com/repo.git",
        "",
    ],
)
def test_local_and_helper_transports_are_refused(url: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_clone_url(url)
    assert "cannot be cloned" in caught.value.detail


@pytest.mark.parametrize(
    ("url", "stored", "secrets"),
    [
        ("https://github.com/o/r.git", "https://github.com/o/r.git", ()),
        ("https://tok@github.com/o/r.git", "https://github.com/o/r.git", ("tok",)),
        ("https://u:p4ss@github.com:8443/o/r", "https://github.com:8443/o/r", ("p4ss", "u")),
        ("ssh://git@host/o/r.git", "ssh://git@host/o/r.git", ()),
        ("ssh://git:pw@host/o/r.git", "ssh://git@host/o/r.git", ("pw",)),
        ("git@github.com:o/r.git", "git@github.com:o/r.git", ()),
        ("git://host/r.git", "git://host/r.git", ()),
        ("http://u:p@[::1]:81/r", "http://[::1]:81/r", ("p", "u")),
    ],
)
def test_network_urls_lose_their_credentials(
    url: str, stored: str, secrets: tuple[str, ...]
) -> None:
    parsed = parse_clone_url(url)
    assert parsed.clone == url and parsed.stored == stored
    assert set(parsed.secrets) == set(secrets)
    message = parsed.redact(f"fatal: could not read from '{url}': token {secrets[:1]}")
    for secret in secrets:
        assert f"{secret}@" not in message and f":{secret}" not in message
        if len(secret) >= 4:
            assert secret not in message
    assert ("***" in message) == bool(secrets)


def test_refusals_never_quote_credentials() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_clone_url("ftp://user:hunter2@example.com/r")
    assert "hunter2" not in caught.value.detail
