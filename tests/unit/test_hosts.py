"""Which Host names the server answers to, and when proxy headers are trusted (issue 11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeyard.api.hosts import allowed_hosts, host_name
from codeyard.config import Settings
from codeyard.server import host_allowlist_notice, proxy_options


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(data_dir=tmp_path, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost:8420", "localhost"),
        ("LOCALHOST", "localhost"),
        ("127.0.0.1:1", "127.0.0.1"),
        ("[::1]:8420", "[::1]"),
        ("[::1]", "[::1]"),
        ("cy.example.com", "cy.example.com"),
        ("", ""),
    ],
)
def test_host_names_lose_their_port(header: str, name: str) -> None:
    assert host_name(header) == name


def test_loopback_is_allowed_by_default_and_more_by_configuration(tmp_path: Path) -> None:
    default = allowed_hosts(_settings(tmp_path))
    assert default is not None
    assert {"localhost", "127.0.0.1", "[::1]"} <= default and "evil.example" not in default
    configured = allowed_hosts(
        _settings(
            tmp_path,
            host="192.168.1.4",
            allowed_hosts="cy.lan, Build.Example",
            public_url="https://cy.example.com/",
        )
    )
    assert configured is not None
    assert {"192.168.1.4", "cy.lan", "build.example", "cy.example.com"} <= configured
    assert allowed_hosts(_settings(tmp_path, allowed_hosts="*")) is None
    assert "0.0.0.0" not in (allowed_hosts(_settings(tmp_path, host="0.0.0.0")) or set())


def test_a_bind_on_every_address_says_which_names_it_accepts(tmp_path: Path) -> None:
    assert host_allowlist_notice(_settings(tmp_path)) is None
    notice = host_allowlist_notice(_settings(tmp_path, host="0.0.0.0"))
    assert notice is not None and "CODEYARD_ALLOWED_HOSTS" in notice
    assert host_allowlist_notice(_settings(tmp_path, host="::", allowed_hosts="cy.lan")) is None


def test_proxy_headers_are_trusted_only_when_configured(tmp_path: Path) -> None:
    assert proxy_options(_settings(tmp_path)) == {"proxy_headers": False}
    behind = proxy_options(_settings(tmp_path, behind_tls_proxy=True))
    assert behind == {"proxy_headers": True, "forwarded_allow_ips": "127.0.0.1,::1"}
    explicit = proxy_options(_settings(tmp_path, forwarded_allow_ips="10.0.0.2"))
    assert explicit == {"proxy_headers": True, "forwarded_allow_ips": "10.0.0.2"}
