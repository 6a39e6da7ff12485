"""A newcomer's set-up, as they would type it: ``codeyard serve`` on a busy port, a server
started with ``--data-dir`` found by a CLI that was never told about it, and ``/api/docs``
working without a network. Real processes on real loopback ports; nothing mocked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import ROOT, free_port

CODEYARD = str(Path(sys.executable).parent / "codeyard")


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The user's environment without CODEYARD_* and with a fresh home and config dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEYARD_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), NO_COLOR="1", COLUMNS="250")
    env.pop("MAKELEVEL", None)
    env.update(extra)
    return env


@contextlib.contextmanager
def serving(data_dir: Path, port: int, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """``codeyard serve --data-dir … --port …`` until healthy; SIGINT (Ctrl-C) at the end."""
    proc = subprocess.Popen(
        [CODEYARD, "serve", "--data-dir", str(data_dir), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120  # a server start on a saturated machine
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).is_success:
                    break
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CODEYARD, *args], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("makelevel", "hint"), [(None, "try `--port "), ("1", "try `make serve PORT=")]
)
def test_serve_on_a_busy_port_says_so_before_printing_anything(
    tmp_path: Path, busy_port: int, makelevel: str | None, hint: str
) -> None:
    env = clean_env(tmp_path / "home", **({"MAKELEVEL": makelevel} if makelevel else {}))
    done = subprocess.run(
        [CODEYARD, "serve", "--port", str(busy_port), "--data-dir", str(tmp_path / "data")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"Port {busy_port} on 127.0.0.1 is in use" in done.stderr
    assert hint in done.stderr
    suggested = int(done.stderr.split(hint, 1)[1].split("`", 1)[0])
    assert suggested > busy_port
    with socket.socket() as probe:  # the suggestion is really free
        probe.bind(("127.0.0.1", suggested))
    # No banner, no setup code, no sign-in URL for a server that never started.
    assert "Sign in" not in done.stdout and "setup code" not in done.stdout
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()


def test_the_cli_finds_a_server_started_with_data_dir_and_says_which(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = clean_env(home)
    port = free_port()
    data = tmp_path / "elsewhere"
    with serving(data, port, env):
        ls = cli("ls", env=env)
        assert ls.returncode == 0, ls.stderr
        assert "No runs yet" in ls.stdout
        assert f"Using the Codeyard at http://127.0.0.1:{port} (data dir {data}" in ls.stderr

        doctor = cli("doctor", env=env)
        assert f"http://127.0.0.1:{port}" in doctor.stdout, doctor.stdout
        assert str(data) in doctor.stdout  # it checks that server's data dir, not ~/.codeyard
        assert str(home / ".codeyard") not in doctor.stdout

        # Named explicitly, no notice is needed.
        named = cli("--data-dir", str(data), "ls", env=env)
        assert named.returncode == 0 and "Using the Codeyard" not in named.stderr
        via_env = cli("ls", env={**env, "CODEYARD_DATA_DIR": str(data)})
        assert via_env.returncode == 0 and "Using the Codeyard" not in via_env.stderr
        # A data dir without a server is not silently swapped for another one.
        other = cli("--data-dir", str(tmp_path / "nothing"), "ls", env=env)
        assert other.returncode == 1 and "Cannot reach Codeyard" in other.stderr
    # Stopped (Ctrl-C): it leaves the list, and the CLI says nothing runs.
    gone = cli("ls", env=env)
    assert gone.returncode == 1 and "Cannot reach Codeyard at http://127.0.0.1:8420" in gone.stderr


def test_help_mentions_the_data_dir_option() -> None:
    done = subprocess.run([CODEYARD, "--help"], capture_output=True, text=True, timeout=60)
    assert "--data-dir" in done.stdout and "CODEYARD_DATA_DIR" in done.stdout


def test_api_docs_render_offline_from_local_assets(tmp_path: Path) -> None:
    """The docs page and everything it loads come from the server itself."""
    env = clean_env(tmp_path / "home")
    port = free_port()
    with serving(tmp_path / "data", port, env):
        base = f"http://127.0.0.1:{port}"
        page = httpx.get(f"{base}/api/docs", timeout=30)
        assert page.status_code == 200
        assert "cdn" not in page.text and "https://" not in page.text
        for path in ("/api/docs/assets/swagger-ui-bundle.js", "/api/docs/init.js"):
            assert httpx.get(base + path, timeout=30).status_code == 200
