"""Binding: loopback by default, a warning for a public bind without TLS, HTTPS served directly."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from codeyard.cli.testing import invoke
from codeyard.config import Settings
from codeyard.server import exposure_warning, is_loopback
from tests.support.server import ROOT, SERVER_CODE, TOKEN, ServerProcess, free_port

WARNING = "reachable from other machines"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.4", False),
        ("codeyard.example", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_warning_is_for_public_plain_http_only(tmp_path: Path) -> None:
    def warn(**kw: Any) -> str | None:
        return exposure_warning(Settings(data_dir=tmp_path, **kw), tls=False)

    assert Settings(data_dir=tmp_path).host == "127.0.0.1"
    assert warn() is None
    assert WARNING in (warn(host="0.0.0.0") or "")
    assert warn(host="0.0.0.0", behind_tls_proxy=True) is None
    assert exposure_warning(Settings(data_dir=tmp_path, host="0.0.0.0"), tls=True) is None


def test_serve_flags_reach_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Settings] = []
    monkeypatch.setattr("codeyard.server.run_server", seen.append)
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    result = invoke(
        [
            "serve",
            "--host",
            "0.0.0.0",
            "--data-dir",
            str(tmp_path / "d"),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
            "--behind-tls-proxy",
        ]
    )
    assert result.exit_code == 0, result.stdout
    (settings,) = seen
    assert settings.host == "0.0.0.0" and settings.behind_tls_proxy is True
    assert settings.tls_cert == cert and settings.tls_key == key


@pytest.mark.parametrize(
    ("extra", "warned"),
    [
        ({}, False),
        ({"CODEYARD_HOST": "0.0.0.0"}, True),
        ({"CODEYARD_HOST": "0.0.0.0", "CODEYARD_BEHIND_TLS_PROXY": "1"}, False),
    ],
)
def test_a_public_bind_logs_the_warning(
    tmp_path: Path, extra: dict[str, str], warned: bool
) -> None:
    server = ServerProcess(tmp_path / "data", env=extra)
    server.start()
    try:
        assert httpx.get(f"{server.url}/api/health", timeout=30).status_code == 200
    finally:
        server.stop()
    assert (WARNING in server.log_path.read_text()) is warned


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, made here, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "codeyard-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_serves_https_with_the_given_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEYARD_")}
    env.update(
        CODEYARD_DATA_DIR=str(tmp_path / "data"),
        CODEYARD_PORT=str(port),
        CODEYARD_ADMIN_TOKEN=TOKEN,
        CODEYARD_TLS_CERT=str(cert),
        CODEYARD_TLS_KEY=str(key),
    )
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_CODE], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    trusted = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 60  # a server's start under a loaded CI machine
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                health = httpx.get(f"https://127.0.0.1:{port}/api/health", verify=trusted)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert health.status_code == 200
        authed = httpx.get(
            f"https://127.0.0.1:{port}/api/settings",
            verify=trusted,
            timeout=30,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert authed.status_code == 200 and authed.headers["x-frame-options"] == "DENY"
        with pytest.raises(httpx.ConnectError):  # the system trust store does not know it
            httpx.get(f"https://127.0.0.1:{port}/api/health")
        with pytest.raises(httpx.TransportError):  # and plain HTTP is not served
            httpx.get(f"http://127.0.0.1:{port}/api/health")
    finally:
        proc.terminate()
        proc.wait(10)
    assert f"https://127.0.0.1:{port}" in log.read_text()
    assert WARNING not in log.read_text()


def test_tls_needs_both_files(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEYARD_")}
    env.update(CODEYARD_DATA_DIR=str(tmp_path / "data"), CODEYARD_TLS_CERT=str(cert))
    done = subprocess.run(
        [sys.executable, "-c", SERVER_CODE], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert done.returncode != 0
    assert b"--tls-key" in done.stderr
