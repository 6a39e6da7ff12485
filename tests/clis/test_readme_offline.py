"""The README's offline recipe, followed literally for every provider: ``codeyard serve``,
``codeyard fake-llm``, then the ``codeyard run …`` line fake-llm printed for the CLI, with
``--follow``. Real binaries throughout (the server, the fake model server, each agent CLI).

Only the environment differs from a person's terminal: a throw-away ``HOME`` (so
``~/.codeyard`` and fake-llm's ``--home`` land in the test's folder) and free ports instead of
8420/8765, which may be taken on a shared machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from codeyard.agents.acp import (
    ClaudeAcpProvider,
    CodexAcpProvider,
    CopilotProvider,
    GeminiProvider,
    KiloProvider,
    OpenCodeProvider,
    QwenProvider,
)
from codeyard.agents.aider import AiderProvider
from codeyard.agents.claude import ClaudeCodeProvider
from codeyard.agents.codex import CodexProvider
from codeyard.cli.fake_llm import recipe_lines
from codeyard.testing.fake_llm.script import DEFAULT_TEXT
from tests.conftest import make_repo
from tests.support.server import ROOT, free_port

BIN = Path(sys.executable).parent
README = (ROOT / "README.md").read_text()
SECTION = README.split("## Testing your set-up offline", 1)[1].split("\n## ", 1)[0]
PROVIDERS = {
    "claude-code": ClaudeCodeProvider(),
    "codex": CodexProvider(),
    "gemini": GeminiProvider(),
    "copilot": CopilotProvider(),
    "opencode": OpenCodeProvider(),
    "qwen": QwenProvider(),
    "codex-acp": CodexAcpProvider(),
    "claude-acp": ClaudeAcpProvider(),
    "kilo": KiloProvider(),
    "aider": AiderProvider(),
}


def sh_blocks(text: str) -> list[list[str]]:
    """The command lines of each ```sh block (comments and blank lines dropped)."""
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    return [
        [line.split("  #", 1)[0].strip() for line in b.splitlines() if line.strip()] for b in blocks
    ]


def binary(argv: list[str]) -> list[str]:
    """``.venv/bin/codeyard …`` or ``codeyard …`` as this checkout's binary."""
    assert argv[0].endswith("codeyard"), argv
    return [str(BIN / "codeyard"), *argv[1:]]


def with_port(argv: list[str], port: int) -> list[str]:
    out = list(argv)
    if "--port" in out:
        out[out.index("--port") + 1] = str(port)
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("readme-home")
    base = {k: v for k, v in os.environ.items() if not k.startswith("CODEYARD_")}
    base.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        COLUMNS="200",
        NO_COLOR="1",
        CODEYARD_DEFAULT_PERMISSION_MODE="auto",
    )
    return base


@contextlib.contextmanager
def process(argv: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
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


@pytest.fixture(scope="module")
def run_lines(env: dict[str, str]) -> Iterator[dict[str, str]]:
    """Terminals 1 and 2 of the README: the server, then fake-llm; its printed run lines."""
    first = sh_blocks(SECTION)[0]
    serve = shlex.split(next(line for line in first if " serve" in line))
    fake = shlex.split(next(line for line in first if " fake-llm" in line))
    port = free_port()
    server_env = {**env, "CODEYARD_PORT": str(port)}
    with process(binary(serve), server_env):
        deadline = time.monotonic() + 120  # a server start on a saturated machine
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).is_success:
                    break
            assert time.monotonic() < deadline, "codeyard serve did not start"
            time.sleep(0.2)
        with process(with_port(binary(fake), free_port()), env) as llm:
            assert llm.stdout is not None
            lines: dict[str, str] = {}
            for raw in llm.stdout:
                line = raw.strip()
                if line.startswith("codeyard run"):
                    lines[shlex.split(line)[4]] = line  # codeyard run PROMPT --provider X
                if line.startswith("Requests are logged"):
                    break
            yield lines


def test_the_readme_shows_what_fake_llm_prints_for_codex() -> None:
    shown = next(line for b in sh_blocks(SECTION) for line in b if "--provider codex" in line)
    printed = recipe_lines("http://127.0.0.1:8765", Path("/home/you/.cache/codeyard-fake-llm"))
    assert shown in printed


def test_fake_llm_prints_a_line_for_every_cli(run_lines: dict[str, str]) -> None:
    assert set(run_lines) == set(PROVIDERS)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_each_provider_runs_offline_from_the_printed_line(
    provider: str, run_lines: dict[str, str], env: dict[str, str], tmp_path: Path
) -> None:
    problem = PROVIDERS[provider].problem()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{provider} must run in CI: {problem}")
        pytest.skip(f"{provider} cannot run here: {problem}")
    repo = make_repo(tmp_path / "repo")
    argv = [*binary(shlex.split(run_lines[provider])), "--follow"]  # "… and add --follow"
    done = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=240)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert DEFAULT_TEXT.split(";")[0] in out  # the fake model's answer reached the transcript
    assert f"Run #{out.split('Created run #', 1)[1].split()[0]} review" in out
