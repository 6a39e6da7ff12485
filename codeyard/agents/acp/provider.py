"""The ACP providers: ``gemini``, ``copilot``, ``opencode``, ``qwen``, ``kilo``, ``codex-acp``,
``claude-acp`` and ``acp`` (any ACP command).

Options (``agent_options``, merged over the agent profile's ``provider_config``):

* ``command`` — the command that starts the agent in ACP mode (a string or a list); required
  for ``acp``, optional for the others (default: the pinned CLI in ``clis/``, else PATH);
* ``env`` — extra environment, e.g. a model endpoint and key (by default each CLI uses the
  user's own login);
* ``permission_mode`` — Codeyard's decision default (``default``, ``plan``, ``auto``);
* ``auth_method`` (``gemini``, ``acp``) — the ACP ``authenticate`` method to call; Gemini CLI
  uses ``gemini-api-key`` by itself when ``GEMINI_API_KEY`` is set;
* ``config`` (``opencode``, ``kilo``) — OpenCode configuration (providers, models…), written
  to a private file for the turn, never into the worktree;
* ``mcp_servers`` — HTTP MCP servers (``{name: {"type": "http", "url": …, "headers": {…}}}``),
  given to the session in ``session/new`` (``agents.mcp_servers``); with ``codeyard_mcp: true``
  Codeyard adds its own server with a run token (``mcp_server.offer``), over HTTP where the
  agent speaks it, else as the command ``codeyard mcp``; ``"stdio"``: always as the command.

Tool calls an agent asks about reach Codeyard's decision function; what it runs without asking
(Gemini CLI and OpenCode read-only tools, for example) does not. OpenCode asks for nothing by
default, so Codeyard configures it to ask for shell commands, edits, fetches and the tools of
the MCP servers it is given.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import replace
from pathlib import Path
from typing import Any

from codeyard.agents.acp.binaries import (
    CLIS_BIN,
    command_from_option,
    find_binary,
    package_version,
    tool_version,
)
from codeyard.agents.acp.gemini_sessions import gemini_home, protect_saved_session
from codeyard.agents.acp.launch import Launch
from codeyard.agents.base import AdapterItem, AgentFailure, Capabilities, TurnContext
from codeyard.agents.mcp_servers import errors as mcp_errors
from codeyard.agents.mcp_servers import http_servers, stdio_servers
from codeyard.domain.errors import ValidationFailed

__all__ = [
    "AcpProvider",
    "CodexAcpProvider",
    "CopilotProvider",
    "GeminiProvider",
    "GenericAcpProvider",
    "KiloProvider",
    "OpenCodeProvider",
    "QwenProvider",
]

_MODES = ("default", "plan", "auto")
_FIX = "run `make clis` (npm ci in clis/)"
#: OpenCode's permissions unless the configuration sets its own: ask Codeyard.
_OPENCODE_ASK = {"bash": "ask", "edit": "ask", "webfetch": "ask"}
#: Copilot CLI reports a model API failure as this text (then ``end_turn``), not as an error.
_COPILOT_MODEL_ERROR = "Error: Failed to get response from the AI model"


class AcpProvider:
    """An agent spoken to over ACP; subclasses say how to find and start it."""

    name = "acp"
    label = "The ACP agent"
    #: Executable looked up in ``clis/`` then PATH (None: the command must be configured).
    binary: str | None = None
    #: Arguments after the executable that start ACP mode.
    acp_args: tuple[str, ...] = ()
    #: npm package (for the fix in ``problem()``).
    package: str | None = None
    #: The program has no ``--version``: its version is read from the package's manifest.
    version_in_package: bool = False
    capabilities = Capabilities(
        approvals=True, resume=True, interrupt=True, mid_turn_input=False, usage=True, cost=False
    )

    def __init__(self, clis_bin: Path = CLIS_BIN) -> None:
        self._clis_bin = clis_bin

    # --- discovery -----------------------------------------------------------------------------

    def command(self, options: dict[str, Any] | None = None) -> list[str] | None:
        configured = command_from_option((options or {}).get("command"))
        if configured is not None:
            return configured
        if self.binary is None:
            return None
        found = find_binary(self.binary, self._clis_bin)
        return [str(found), *self.acp_args] if found is not None else None

    def path(self) -> str | None:
        command = self.command()
        return command[0] if command else None

    def probe(self, executable: str) -> tuple[str | None, str | None]:
        """(version, None), or (None, why the program cannot run)."""
        if self.version_in_package and self.package:
            return package_version(executable, self.package)
        return tool_version(executable)

    def version(self) -> str | None:
        path = self.path()
        return self.probe(path)[0] if path else None

    def problem(self) -> str | None:
        path = self.path()
        if path is None:
            install = f" or install {self.package} and put `{self.binary}` on PATH"
            return (
                f"{self.label} was not found: {_FIX}{install if self.package else ''}, "
                "or set provider_config.command."
            )
        _, why = self.probe(path)
        if why is not None:
            return f"{self.label} cannot run here: {why}. Reinstall it: {_FIX}."
        return None

    # --- options -------------------------------------------------------------------------------

    def _errors(self, options: dict[str, Any]) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []

        def bad(key: str, msg: str) -> None:
            errors.append({"loc": ["agent_options", key], "msg": msg})

        if "command" in options and command_from_option(options["command"]) is None:
            bad("command", "must be a command line (a non-empty string or list of strings)")
        env = options.get("env")
        if env is not None and not (
            isinstance(env, dict) and all(isinstance(v, str | int | float) for v in env.values())
        ):
            bad("env", "must be an object of environment variables (string values)")
        mode = options.get("permission_mode")
        if mode is not None and mode not in _MODES:
            bad("permission_mode", f"must be one of: {', '.join(_MODES)}")
        method = options.get("auth_method")
        if method is not None and not isinstance(method, str):
            bad("auth_method", "must be the id of one of the agent's authentication methods")
        return errors + mcp_errors(options, stdio=True)

    def validate_options(self, options: dict[str, Any]) -> None:
        errors = self._errors(options)
        if errors:
            raise ValidationFailed(
                f"The {self.name} options are not valid: "
                + "; ".join(f"{e['loc'][-1]} {e['msg']}" for e in errors),
                errors=errors,
            )

    # --- a turn --------------------------------------------------------------------------------

    def _env(self, options: dict[str, Any]) -> dict[str, str]:
        return {str(k): str(v) for k, v in (options.get("env") or {}).items()}

    def launch(self, ctx: TurnContext) -> Launch:
        """How to start the agent for this turn; subclasses add their model and settings."""
        command = self.command(ctx.options)
        if command is None:
            raise AgentFailure(self.problem() or f"{self.label} has no command to start it.")
        method = ctx.options.get("auth_method")
        return Launch(
            provider=self.name,
            label=self.label,
            argv=command,
            env=self._env(ctx.options),
            cli_version=self.probe(command[0])[0],
            auth_method=method if isinstance(method, str) else None,
            mcp_servers=http_servers(ctx.options),
            mcp_commands=stdio_servers(ctx.options),
        )

    def prepare(self, ctx: TurnContext, launch: Launch) -> None:
        """Anything to do before the agent starts (a vendor's workaround)."""

    async def run_turn(self, ctx: TurnContext) -> AsyncIterator[AdapterItem]:
        launch = self.launch(ctx)
        self.prepare(ctx, launch)
        from codeyard.agents.acp.turn import run_acp_turn  # imports the SDK: on first use

        # Closed with this generator (the executor's ``aclose``): the turn's stop runs now.
        async with aclosing(run_acp_turn(ctx, launch)) as items:
            async for item in items:
                yield item


class GenericAcpProvider(AcpProvider):
    """Any agent that speaks ACP over stdio, from ``provider_config.command``."""

    name = "acp"
    label = "The ACP agent"
    capabilities = Capabilities(
        approvals=True, resume=False, interrupt=True, mid_turn_input=False, usage=False, cost=False
    )

    def problem(self) -> str | None:
        return None  # each profile brings its own command; validate_options checks it

    def version(self) -> str | None:
        return None

    def _errors(self, options: dict[str, Any]) -> list[dict[str, Any]]:
        errors = super()._errors(options)
        if "command" not in options:
            errors.append(
                {
                    "loc": ["agent_options", "command"],
                    "msg": "is required: the command that starts an ACP agent over stdio, "
                    'e.g. "gemini --acp" (set it in provider_config.command)',
                }
            )
        return errors


#: Gemini and Copilot report tokens of known models, which Codeyard prices.
_PRICED = Capabilities(
    approvals=True, resume=True, interrupt=True, mid_turn_input=False, usage=True, cost=True
)


class GeminiProvider(AcpProvider):
    name = "gemini"
    label = "Gemini CLI"
    binary = "gemini"
    acp_args = ("--acp",)
    package = "@google/gemini-cli"
    #: ``session/set_model`` during a prompt reaches its next model call (tested for real).
    capabilities = replace(_PRICED, mid_turn_model=True)

    def launch(self, ctx: TurnContext) -> Launch:
        base = super().launch(ctx)
        argv = [*base.argv, "-m", ctx.model] if ctx.model else base.argv
        # Codeyard made the worktree: trusting it is what the operator asked for.
        env = {"GEMINI_CLI_TRUST_WORKSPACE": "true", **base.env}
        method = base.auth_method
        if method is None and (env.get("GEMINI_API_KEY") or os.environ.get("GEMINI_API_KEY")):
            method = "gemini-api-key"
        return replace(base, argv=argv, env=env, auth_method=method)

    def prepare(self, ctx: TurnContext, launch: Launch) -> None:
        if ctx.session_id:
            protect_saved_session(gemini_home(launch.env), ctx.session_id)


class CopilotProvider(AcpProvider):
    name = "copilot"
    label = "Copilot CLI"
    binary = "copilot"
    acp_args = ("--acp",)
    package = "@github/copilot"
    capabilities = _PRICED

    def launch(self, ctx: TurnContext) -> Launch:
        base = super().launch(ctx)
        argv = [*base.argv, "--model", ctx.model] if ctx.model else base.argv
        return replace(base, argv=argv, error_marker=_COPILOT_MODEL_ERROR)


class OpenCodeProvider(AcpProvider):
    name = "opencode"
    label = "OpenCode"
    binary = "opencode"
    acp_args = ("acp",)
    package = "opencode-ai"
    #: The variable naming the turn's configuration file, and the file's name.
    config_variable = "OPENCODE_CONFIG"
    config_name = "opencode.json"

    def _errors(self, options: dict[str, Any]) -> list[dict[str, Any]]:
        errors = super()._errors(options)
        if options.get("config") is not None and not isinstance(options["config"], dict):
            errors.append({"loc": ["agent_options", "config"], "msg": "must be an object"})
        return errors

    def launch(self, ctx: TurnContext) -> Launch:
        base = super().launch(ctx)
        config: dict[str, Any] = dict(ctx.options.get("config") or {})
        # MCP servers' tools (``<server>_<tool>``) ask too, so they reach Codeyard's policy.
        mcp_ask = {f"{name}_*": "ask" for name in base.mcp_names}
        config.setdefault("permission", {**_OPENCODE_ASK, **mcp_ask})
        if ctx.model:
            config["model"] = ctx.model
        folder = Path(tempfile.mkdtemp(prefix=f"codeyard-{self.name}-"))
        path = folder / self.config_name
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        path.chmod(0o600)  # it may hold API keys
        env = {**base.env, self.config_variable: str(path)}
        return replace(base, env=env, scratch=[folder])


class KiloProvider(OpenCodeProvider):
    """Kilo CLI (``@kilocode/cli``, an OpenCode fork): ``kilo acp``, any OpenAI-compatible or
    Anthropic endpoint through an OpenCode-style ``config`` (providers, models, permissions).

    Its configuration file is named by ``KILO_CONFIG`` (OpenCode's ``OPENCODE_CONFIG`` is not
    read); as for OpenCode, Codeyard writes it privately for the turn and makes the agent ask
    before shell commands, edits and fetches.
    """

    name = "kilo"
    label = "Kilo CLI"
    binary = "kilo"
    acp_args = ("acp",)
    package = "@kilocode/cli"
    config_variable = "KILO_CONFIG"
    config_name = "kilo.json"


class QwenProvider(AcpProvider):
    """Qwen Code (a Gemini CLI fork): ``qwen --acp``, any OpenAI-compatible endpoint.

    With ``OPENAI_API_KEY`` in its environment it is told to use the OpenAI-compatible API
    (``--auth-type openai``; ``OPENAI_BASE_URL`` points it at a local model), otherwise it uses
    the user's own Qwen login.
    """

    name = "qwen"
    label = "Qwen Code"
    binary = "qwen"
    acp_args = ("--acp",)
    package = "@qwen-code/qwen-code"
    #: No ``mid_turn_model``: Qwen Code 0.15 accepts ``session/set_model`` during a prompt but
    #: its next model call keeps the old model; a switch applies from the next turn.
    capabilities = _PRICED

    def launch(self, ctx: TurnContext) -> Launch:
        base = super().launch(ctx)
        argv = [*base.argv, "-m", ctx.model] if ctx.model else list(base.argv)
        env = base.env
        if env.get("OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY"):
            argv += ["--auth-type", "openai"]
        return replace(base, argv=argv, env=env)


class CodexAcpProvider(AcpProvider):
    """Codex through Zed's ACP adapter (``codex-acp``): the same agent as ``codex`` (which
    drives Codex's own app-server), reached over ACP like the others — to compare, or where
    only the adapter is installed.

    ``config`` holds Codex configuration overrides (``{"dotted.key": value}``, passed as
    ``-c key=value``), e.g. a ``model_providers.<name>`` table for a local model server.
    Unless it says otherwise, Codex asks before anything it does not consider safe
    (``approval_policy = "untrusted"``) and writes only inside the worktree.
    """

    name = "codex-acp"
    label = "Codex (ACP)"
    binary = "codex-acp"
    package = "@zed-industries/codex-acp"
    version_in_package = True
    #: The adapter reports context-window use, not the tokens a turn spent.
    capabilities = Capabilities(
        approvals=True, resume=True, interrupt=True, mid_turn_input=False, usage=False, cost=False
    )

    def _errors(self, options: dict[str, Any]) -> list[dict[str, Any]]:
        errors = super()._errors(options)
        if options.get("config") is not None and not isinstance(options["config"], dict):
            errors.append(
                {"loc": ["agent_options", "config"], "msg": 'must be an object ({"key": value})'}
            )
        return errors

    def launch(self, ctx: TurnContext) -> Launch:
        from codeyard.agents.codex.turn import toml_value  # Codex's -c syntax

        base = super().launch(ctx)
        config: dict[str, Any] = {
            "approval_policy": "untrusted",
            "sandbox_mode": "workspace-write",
            **(ctx.options.get("config") or {}),
        }
        if ctx.model:
            config["model"] = ctx.model
        argv = list(base.argv)
        for key, value in config.items():
            argv += ["-c", f"{key}={toml_value(value)}"]
        # The adapter outlives its closed input: it would cost every turn the stop's grace.
        return replace(base, argv=argv, exits_on_eof=False)


class ClaudeAcpProvider(AcpProvider):
    """Claude Code through Zed's ACP adapter (``claude-agent-acp``, which runs the Claude Code
    of its ``claude-agent-sdk``): the same agent as ``claude-code``, reached over ACP.

    The model is chosen with ``session/set_model`` (the adapter maps any other setting to its
    aliases, ``default`` being its own choice). As root, the adapter's Claude Code refuses to
    start unless told it is sandboxed (``IS_SANDBOX=1``): Codeyard contains it, and every tool
    call still comes to Codeyard's decision through ``session/request_permission``.
    """

    name = "claude-acp"
    label = "Claude Code (ACP)"
    binary = "claude-agent-acp"
    package = "@zed-industries/claude-agent-acp"
    version_in_package = True
    capabilities = _PRICED

    def launch(self, ctx: TurnContext) -> Launch:
        base = super().launch(ctx)
        env = dict(base.env)
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            env.setdefault("IS_SANDBOX", "1")
        return replace(base, env=env, set_model=ctx.model)
