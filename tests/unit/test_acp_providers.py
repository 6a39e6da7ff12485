"""The ACP providers' set-up: finding the CLI, options, and how each agent is started."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from codeyard.agents.acp import (
    ClaudeAcpProvider,
    CodexAcpProvider,
    CopilotProvider,
    GeminiProvider,
    GenericAcpProvider,
    KiloProvider,
    OpenCodeProvider,
    QwenProvider,
)
from codeyard.agents.acp.binaries import command_from_option, tool_version
from codeyard.agents.acp.gemini_sessions import protect_saved_session
from codeyard.agents.acp.models import plain_model as _plain_model
from codeyard.agents.base import TurnContext
from codeyard.domain.errors import ValidationFailed
from codeyard.domain.tools import Decision, ToolRequest


def fake_cli(folder: Path, name: str, version: str = "9.8.7") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\necho '{name} {version}'\n")
    path.chmod(0o755)
    return path


async def _decide(request: ToolRequest) -> Decision:
    return Decision(True)


async def _ask(question: str) -> str:
    return ""


def context(tmp_path: Path, model: str | None, **options: Any) -> TurnContext:
    return TurnContext(
        run_id="run_1",
        turn=1,
        prompt="Hi",
        source="create",
        worktree=tmp_path / "tree",
        model=model,
        options=options,
        session_id=None,
        resume_state={},
        resumed_source=None,
        decide=_decide,
        ask_operator=_ask,
    )


def test_the_pinned_cli_is_found_before_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = fake_cli(tmp_path / "clis", "gemini", "0.61.0")
    on_path = fake_cli(tmp_path / "bin", "gemini", "1.0.0")
    monkeypatch.setenv("PATH", str(on_path.parent))
    provider = GeminiProvider(clis_bin=pinned.parent)
    assert provider.path() == str(pinned) and provider.version() == "0.61.0"
    assert provider.command() == [str(pinned), "--acp"]
    assert provider.problem() is None
    # Without the pinned copy, PATH; a configured command beats both.
    assert GeminiProvider(clis_bin=tmp_path / "none").path() == str(on_path)
    assert provider.command({"command": "my-gemini --acp --debug"}) == [
        "my-gemini",
        "--acp",
        "--debug",
    ]


def test_a_missing_cli_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    problem = OpenCodeProvider(clis_bin=tmp_path).problem()
    assert problem is not None
    assert "run `make clis` (npm ci in clis/)" in problem and "opencode-ai" in problem
    assert OpenCodeProvider(clis_bin=tmp_path).version() is None


def test_a_cli_that_cannot_run_is_a_problem(tmp_path: Path) -> None:
    broken = tmp_path / "copilot"
    broken.write_text("#!/bin/sh\necho 'cannot start' >&2\nexit 3\n")
    broken.chmod(0o755)
    problem = CopilotProvider(clis_bin=tmp_path).problem()
    assert problem is not None and "exit 3" in problem and "cannot start" in problem
    tool_version.cache_clear()


def test_the_generic_provider_needs_a_command() -> None:
    provider = GenericAcpProvider()
    with pytest.raises(ValidationFailed) as missing:
        provider.validate_options({})
    assert "command is required" in str(missing.value)
    assert "provider_config.command" in str(missing.value)
    with pytest.raises(ValidationFailed):
        provider.validate_options({"command": ["ok", ""]})
    provider.validate_options({"command": "gemini --acp", "auth_method": "gemini-api-key"})
    assert provider.problem() is None and provider.capabilities.resume is False


@pytest.mark.parametrize(
    ("options", "wrong"),
    [
        ({"env": {"A": ["x"]}}, "env"),
        ({"permission_mode": "bypassPermissions"}, "permission_mode"),
        ({"command": "   "}, "command"),
        ({"auth_method": 3}, "auth_method"),
    ],
)
def test_bad_options_are_named(options: dict[str, Any], wrong: str) -> None:
    with pytest.raises(ValidationFailed) as failed:
        GeminiProvider().validate_options(options)
    assert [e["loc"][-1] for e in failed.value.extra["errors"]] == [wrong]


def test_command_option_forms() -> None:
    assert command_from_option("a 'b c'") == ["a", "b c"]
    assert command_from_option(["a", "b"]) == ["a", "b"]
    assert command_from_option("unbalanced 'quote") is None
    assert command_from_option(3) is None


def test_gemini_gets_its_model_trust_and_api_key_auth(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path / "clis", "gemini")
    ctx = context(tmp_path, "gemini-2.5-pro", env={"GEMINI_API_KEY": "k"})
    launch = GeminiProvider(clis_bin=cli.parent).launch(ctx)
    assert launch.argv == [str(cli), "--acp", "-m", "gemini-2.5-pro"]
    assert launch.env["GEMINI_CLI_TRUST_WORKSPACE"] == "true"
    assert launch.auth_method == "gemini-api-key" and launch.label == "Gemini CLI"


def test_copilot_gets_its_model_and_reads_model_failures(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path / "clis", "copilot")
    launch = CopilotProvider(clis_bin=cli.parent).launch(context(tmp_path, "gpt-4.1"))
    assert launch.argv == [str(cli), "--acp", "--model", "gpt-4.1"]
    assert launch.error_marker is not None and launch.auth_method is None


def test_opencode_config_is_private_asks_codeyard_and_names_the_model(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path / "clis", "opencode")
    provider = OpenCodeProvider(clis_bin=cli.parent)
    ctx = context(tmp_path, "fake/m", config={"share": "disabled"})
    launch = provider.launch(ctx)
    assert launch.argv == [str(cli), "acp"]
    config_path = Path(launch.env["OPENCODE_CONFIG"])
    assert config_path.parent in launch.scratch
    assert not config_path.is_relative_to(ctx.worktree)
    assert oct(config_path.stat().st_mode & 0o777) == "0o600"
    config = json.loads(config_path.read_text())
    assert config == {
        "share": "disabled",
        "permission": {"bash": "ask", "edit": "ask", "webfetch": "ask"},
        "model": "fake/m",
    }
    # The operator's own permission settings are kept.
    own = provider.launch(context(tmp_path, None, config={"permission": {"bash": "allow"}}))
    assert json.loads(Path(own.env["OPENCODE_CONFIG"]).read_text()) == {
        "permission": {"bash": "allow"}
    }


def test_kilo_reads_its_private_config_from_its_own_variable(tmp_path: Path) -> None:
    """Kilo CLI ignores ``OPENCODE_CONFIG``: its config must be named by ``KILO_CONFIG``."""
    cli = fake_cli(tmp_path / "clis", "kilo")
    provider = KiloProvider(clis_bin=cli.parent)
    ctx = context(tmp_path, "fake/m", config={"share": "disabled"})
    launch = provider.launch(ctx)
    assert launch.argv == [str(cli), "acp"] and launch.label == "Kilo CLI"
    assert "OPENCODE_CONFIG" not in launch.env
    config_path = Path(launch.env["KILO_CONFIG"])
    assert config_path.name == "kilo.json" and config_path.parent in launch.scratch
    assert not config_path.is_relative_to(ctx.worktree)
    assert oct(config_path.stat().st_mode & 0o777) == "0o600"
    assert json.loads(config_path.read_text())["permission"] == {
        "bash": "ask",
        "edit": "ask",
        "webfetch": "ask",
    }
    problem = KiloProvider(clis_bin=tmp_path / "none").problem()
    assert problem is not None and "@kilocode/cli" in problem


def test_a_saved_gemini_session_is_renamed_out_of_the_clean_up_pattern(tmp_path: Path) -> None:
    chats = tmp_path / ".gemini" / "tmp" / "repo" / "chats"
    chats.mkdir(parents=True)
    session = "0123abcd-1111-2222-3333-444455556666"
    saved = chats / "session-2026-11-22T12-42-0123abcd.jsonl"
    saved.write_text("{}\n")
    other = chats / "session-2026-11-22T12-42-99999999.jsonl"
    other.write_text("{}\n")
    (moved,) = protect_saved_session(tmp_path, session)
    assert moved.name == "session-2026-11-22T12-42-0123abcd.codeyard.jsonl"
    assert moved.read_text() == "{}\n" and not saved.exists() and other.exists()
    # Gemini CLI's clean-up matches "-<8 characters>.jsonl"; the new name does not.
    assert not moved.name.endswith("-0123abcd.jsonl")
    assert protect_saved_session(tmp_path, session) == []


def test_qwen_gets_its_model_and_the_openai_api_when_given_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cli = fake_cli(tmp_path / "clis", "qwen")
    provider = QwenProvider(clis_bin=cli.parent)
    with_key = provider.launch(context(tmp_path, "qwen3-coder-plus", env={"OPENAI_API_KEY": "k"}))
    assert with_key.argv == [str(cli), "--acp", "-m", "qwen3-coder-plus", "--auth-type", "openai"]
    assert with_key.label == "Qwen Code" and with_key.auth_method is None
    # Without a key (none in the server's environment either) it keeps the user's own login.
    own_login = provider.launch(context(tmp_path, None))
    assert own_login.argv == [str(cli), "--acp"]
    assert "run `make clis`" in str(QwenProvider(clis_bin=tmp_path / "none").problem())


def test_qualified_model_ids_are_plain_model_names() -> None:
    assert _plain_model("$runtime|openai|qwen3-coder-plus(openai)") == "qwen3-coder-plus"
    assert _plain_model("qwen3-coder-plus(openai)") == "qwen3-coder-plus"
    assert _plain_model("gemini-2.5-pro") == "gemini-2.5-pro"
    assert _plain_model("fake/fake-model") == "fake/fake-model"


def test_codex_acp_passes_codex_config_and_asks_by_default(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path / "clis" / ".bin", "codex-acp")
    provider = CodexAcpProvider(clis_bin=cli.parent)
    config = {"model_provider": "fake", "model_providers.fake": {"base_url": "http://x/v1"}}
    launch = provider.launch(context(tmp_path, "gpt-5.4", config=config))
    pairs = [launch.argv[i + 1] for i, word in enumerate(launch.argv) if word == "-c"]
    assert pairs == [
        'approval_policy="untrusted"',
        'sandbox_mode="workspace-write"',
        'model_provider="fake"',
        'model_providers.fake={"base_url" = "http://x/v1"}',
        'model="gpt-5.4"',
    ]
    with pytest.raises(ValidationFailed, match="config"):
        provider.validate_options({"config": "approval_policy=never"})
    assert provider.capabilities.usage is False  # context-window use only, no spent tokens
    assert launch.exits_on_eof is False  # interrupted at a turn's end, not waited for


def test_an_adapter_without_version_flag_reads_its_package_manifest(tmp_path: Path) -> None:
    """``codex-acp --version`` starts ACP mode: the version comes from ``package.json``."""
    bin_dir = tmp_path / "node_modules" / ".bin"
    cli = fake_cli(bin_dir, "codex-acp")
    manifest = tmp_path / "node_modules" / "@zed-industries" / "codex-acp" / "package.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"name": "@zed-industries/codex-acp", "version": "0.16.0"}))
    provider = CodexAcpProvider(clis_bin=bin_dir)
    assert provider.version() == "0.16.0" and provider.problem() is None
    cli.chmod(0o644)
    assert "not executable" in str(provider.problem())


def test_claude_acp_chooses_the_model_over_acp_and_is_sandboxed_as_root(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path / "clis", "claude-agent-acp")
    launch = ClaudeAcpProvider(clis_bin=cli.parent).launch(context(tmp_path, "claude-opus-4-5"))
    assert launch.argv == [str(cli)] and launch.set_model == "claude-opus-4-5"
    assert ("IS_SANDBOX" in launch.env) is (os.geteuid() == 0)
    assert ClaudeAcpProvider(clis_bin=cli.parent).launch(context(tmp_path, None)).set_model is None
