"""One turn of Claude Code through ``claude-agent-sdk``: start, stream, decide, stop.

Each turn is one CLI process (resumed with ``--resume <session id>`` after the first), so a
turn that follows a pause, a cancel, a failure or a server restart continues the same session.
Tool permission requests arrive through the SDK's ``can_use_tool`` callback and go to Codeyard's
decision function. Stopping is the one sequence of ``agents.stopping``: the control
``interrupt``, then stdin is closed, then the process group gets SIGINT, SIGTERM and SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import AsyncGenerator, AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

from claude_agent_sdk import (
    CanUseToolShadowedWarning,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ClaudeSDKError,
    PermissionResult,
    PermissionResultAllow,
    PermissionResultDeny,
    ToolPermissionContext,
)

from codeyard.agents import piped, timing
from codeyard.agents.base import (
    SESSION_BEHIND,
    AdapterItem,
    AgentFailure,
    RawOutput,
    TurnContext,
    TurnEnd,
)
from codeyard.agents.claude.normalize import (
    Failed,
    NormalizedItem,
    NormalizeState,
    normalize,
    tool_kind,
)
from codeyard.agents.claude.process import (
    CLI_ENV,
    PID_FILE_ENV,
    ProcessGroup,
    cli_script,
    launcher,
)
from codeyard.agents.claude.settings import TurnSettings
from codeyard.agents.claude.stream_json import parse
from codeyard.agents.process import GATE_PARENT_ENV, StderrRing
from codeyard.agents.stopping import TurnStop, stop_turn
from codeyard.attachments.images import load_paths
from codeyard.domain.events import ErrorEvent, ToolCall
from codeyard.domain.tools import ToolRequest
from codeyard.sandbox import SandboxUnavailable, contain

__all__ = ["PROMPTS", "TurnSettings", "run_claude_turn"]

log = logging.getLogger(__name__)
PROMPTS: dict[str, str] = json.loads(
    resources.files("codeyard.agents.claude").joinpath("prompts.json").read_text("utf-8")
)
STDERR_LINES = 40
#: What Claude Code answers to ``--resume`` with a session it does not have.
LOST_SESSION = "No conversation found with session ID"


class _Turn:
    def __init__(self, ctx: TurnContext, settings: TurnSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.state = NormalizeState(
            session_id=ctx.session_id,
            cost_total=float(ctx.resume_state.get("cost_total", 0.0) or 0.0),
            tasks=dict(ctx.resume_state.get("tasks") or {}),
            resumed=ctx.session_id is not None,
        )
        self.stderr = StderrRing(STDERR_LINES)
        self.tmp = Path(tempfile.mkdtemp(prefix="codeyard-claude-turn-"))
        self.group: ProcessGroup | None = None
        #: Tool calls already yielded, so a decision is logged after the call it decides.
        self.yielded: dict[str, asyncio.Event] = {}
        #: The session to resume; dropped when Claude Code no longer has it.
        self.resume = ctx.session_id
        #: Operator messages written to the CLI mid-turn, and user messages it replayed back
        #: (the turn's prompt first): a message counts as taken in once it is replayed.
        self.sent = 0
        self.replayed = 0
        self.closing = False
        #: The stop begun as soon as the turn's end arrived (before its last items are stored).
        self.stopping: asyncio.Future[None] | None = None

    # --- set-up ------------------------------------------------------------------------------

    def options(self) -> ClaudeAgentOptions:
        s = self.settings
        env = dict(s.env)
        if (
            s.permission_mode == "bypassPermissions"
            and hasattr(os, "geteuid")
            and os.geteuid() == 0
        ):
            env.setdefault("IS_SANDBOX", "1")  # the CLI refuses bypass modes as root otherwise
        env = {**env, PID_FILE_ENV: str(self.tmp / "pid"), CLI_ENV: self._contained_cli(env)}
        env[GATE_PARENT_ENV] = str(os.getpid())  # the launcher's check that we still live
        system_prompt: Any = {"type": "preset", "preset": "claude_code"}
        if s.instructions:
            system_prompt["append"] = s.instructions
        return ClaudeAgentOptions(
            cwd=str(self.ctx.worktree),
            cli_path=str(launcher()),
            env=env,
            model=self.ctx.model,
            system_prompt=system_prompt,
            permission_mode=s.permission_mode,  # type: ignore[arg-type]
            allowed_tools=list(s.allowed_tools),
            disallowed_tools=list(s.disallowed_tools),
            max_turns=s.max_turns,
            resume=self.resume,
            can_use_tool=self.can_use_tool,
            mcp_servers=dict(s.mcp_servers),
            stderr=self.stderr.append,
            include_partial_messages=True,  # text streams as agent.delta events
            # Replayed user messages tell when a message sent mid-turn reached the model.
            extra_args={"replay-user-messages": None} if self.ctx.next_messages else {},
        )

    def _contained_cli(self, env: dict[str, str]) -> str:
        """A script (private to the turn) that runs the CLI in the sandbox with the allowlisted
        environment: the SDK spawns it with the server's environment merged in."""
        try:
            jail = contain(
                self.ctx.sandbox,
                "claude-code",
                [str(self.settings.cli)],
                env,
                cwd=self.ctx.worktree,
                own_session=True,  # the launcher makes the CLI a session's leader
            )
        except SandboxUnavailable as exc:
            raise AgentFailure(exc.detail) from exc
        script = self.tmp / "contained-claude"
        script.write_text(cli_script(jail, [*os.environ, *env, PID_FILE_ENV, CLI_ENV]))
        script.chmod(0o700)
        return str(script)

    def prompt(self) -> str:
        if self.ctx.source == "resume" and self.resume:
            if self.ctx.resume_state.get(SESSION_BEHIND):
                return self.ctx.prompt  # the failover notice, then the turn's request
            return PROMPTS["resume"]
        return self.ctx.prompt

    def _query(self) -> str | AsyncIterator[dict[str, Any]]:
        """The prompt; with images, one user message of text and image content blocks."""
        images = load_paths(list(self.ctx.images))
        if not images:
            return self.prompt()
        content: list[dict[str, Any]] = [{"type": "text", "text": self.prompt()}]
        for image in images:
            source = {"type": "base64", "media_type": image.media_type, "data": image.base64}
            content.append({"type": "image", "source": source})
        message = {"role": "user", "content": content}

        async def one() -> AsyncIterator[dict[str, Any]]:
            yield {"type": "user", "message": message, "parent_tool_use_id": None}

        return one()

    def _find_group(self) -> ProcessGroup | None:
        try:
            return ProcessGroup(int((self.tmp / "pid").read_text().strip()))
        except (OSError, ValueError):
            log.warning("run %s: Claude Code's pid was not recorded", self.ctx.run_id)
            return None

    # --- permission requests -----------------------------------------------------------------

    async def can_use_tool(
        self, name: str, tool_input: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResult:
        call_id = context.tool_use_id or f"claude_{len(self.yielded)}"
        seen = self.yielded.setdefault(call_id, asyncio.Event())
        if not seen.is_set():  # ``wait_for`` costs a task and a timer even when it is set
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(seen.wait(), 2.0)
        hints = {"deny": True} if name in self.settings.deny_tools else {}
        request = ToolRequest(call_id, name, tool_kind(name), tool_input, hints)
        decision = await self.ctx.decide(request)
        # The SDK writes the answer to the CLI's stdin (its control channel) in this same task
        # step, with nothing to wait for but its write lock.
        timing.mark(f"decision delivered {call_id}")
        if decision.allow:
            return PermissionResultAllow(updated_input=tool_input)
        reason = (decision.reason or "not allowed").rstrip(".")
        return PermissionResultDeny(message=PROMPTS["deny"].format(reason=reason))

    # --- the stream --------------------------------------------------------------------------

    async def _connect(self) -> ClaudeSDKClient | None:
        """A started client; None when the session to resume is gone (Claude Code says so)."""
        client = ClaudeSDKClient(self.options())
        # The SDK spawns the CLI with anyio.open_process, i.e. the loop's subprocess_exec:
        # under uvloop that forks the whole server; this makes it vfork (agents/piped.py).
        # It starts the launcher as a new session's leader too (the launcher's setsid then
        # needs no program start of its own).
        piped.install(asyncio.get_running_loop())
        try:
            with warnings.catch_warnings(), piped.new_session():
                # Allowed tools (or a bypass mode) skipping Codeyard's decision function
                # are the operator's explicit choice, not a mistake to warn about.
                warnings.simplefilter("ignore", CanUseToolShadowedWarning)
                await client.connect()
        except ClaudeSDKError as exc:
            if self.resume and LOST_SESSION in str(exc):
                return None
            raise AgentFailure(self._explain(f"Claude Code did not start: {exc}")) from exc
        return client

    async def run(self) -> AsyncGenerator[AdapterItem, None]:
        client: ClaudeSDKClient | None = None
        try:
            client = await self._connect()
            if client is None:
                lost = self.resume
                yield ErrorEvent(message=PROMPTS["lost_session"], detail=lost)
                self.resume, self.state.resumed = None, False
                self.stderr.clear()
                client = await self._connect()
                if client is None:  # unreachable: without a session to resume there is no None
                    raise AgentFailure("Claude Code could not start a new session.")
            self.group = self._find_group()
            # The group's record is written while the prompt goes out (the CLI already runs,
            # tied to the server's life; the record is for a restart after a crash).
            tracking = None
            if self.group is not None:
                tracking = asyncio.ensure_future(self.group.track("claude-code"))
            try:
                await client.query(self._query())
            finally:
                if tracking is not None:
                    await tracking
            sides = [
                asyncio.ensure_future(side(client))
                for side, wanted in (
                    (self._feed, self.ctx.next_messages),
                    (self._switch, self.ctx.next_model),
                )
                if wanted is not None
            ]
            try:
                async with contextlib.aclosing(self._items(client)) as items:
                    async for item in items:
                        yield item
            finally:
                for side_task in sides:
                    side_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await side_task
        except (asyncio.CancelledError, GeneratorExit):
            self.state.interrupting = True
            await self._stop(client, interrupt=True)
            raise
        except BaseException:
            await self._stop(client, interrupt=False)
            raise
        else:
            await self._stop(client, interrupt=False)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    async def _feed(self, client: ClaudeSDKClient) -> None:
        """Write operator messages to the running CLI; it folds them into the running turn."""
        assert self.ctx.next_messages is not None
        while True:
            texts = await self.ctx.next_messages()
            if self.closing:
                return  # the turn is ending: the messages stay queued for the next turn
            for text in texts:
                self.sent += 1
                await client.query(text)

    async def _switch(self, client: ClaudeSDKClient) -> None:
        """Switch the running CLI's model (``set_model`` control request) when the run's model
        changes mid-turn: its next model call uses it. A refused switch is logged; the run's
        next turn starts with the new model anyway."""
        assert self.ctx.next_model is not None and self.ctx.model_applied is not None
        while True:
            model = await self.ctx.next_model()
            if self.closing:
                return
            try:
                await client.set_model(model)
            except Exception as exc:  # the SDK raises bare Exception for control errors
                log.warning(
                    "run %s: mid-turn switch to %s refused: %s", self.ctx.run_id, model, exc
                )
                continue
            await self.ctx.model_applied(model)

    async def _on_replay(self) -> None:
        self.replayed += 1
        if self.replayed > 1 and self.ctx.messages_taken is not None:
            await self.ctx.messages_taken(1)

    @staticmethod
    def _raw(client: ClaudeSDKClient) -> AsyncGenerator[Any, None]:
        """The CLI's messages as JSON objects (raw first: normalized here, logged as they came).

        The SDK's public iterator returns its own parsed classes; the raw objects come from its
        query object, the one private attribute this adapter relies on. Its generator itself,
        not one re-yielding it (each message resumes every generator on the way).
        """
        query = getattr(client, "_query", None)
        if query is None or not hasattr(query, "receive_messages"):
            raise AgentFailure("This claude-agent-sdk version is not supported by Codeyard.")
        messages: AsyncGenerator[Any, None] = query.receive_messages()
        return messages

    async def _items(self, client: ClaudeSDKClient) -> AsyncGenerator[AdapterItem, None]:
        ended = False
        try:
            async with contextlib.aclosing(self._raw(client)) as stream:
                async for raw in stream:
                    if not isinstance(raw, dict):
                        continue
                    kind = raw.get("type")
                    if kind != "stream_event":  # deltas would only repeat the text
                        yield RawOutput(json.dumps(raw, ensure_ascii=False))
                    if kind == "user" and raw.get("isReplay"):
                        await self._on_replay()
                        continue
                    items = normalize(parse(raw), self.state)
                    if self._ends(items):
                        # The CLI has nothing left to do: it exits while the turn's last items
                        # (usage, session, end) are stored, not after.
                        self.closing = True
                        self.stopping = asyncio.ensure_future(self._stop_sequence(client, False))
                    for item in items:
                        if isinstance(item, Failed):
                            raise AgentFailure(self._explain(item.reason))
                        if isinstance(item, TurnEnd):
                            if self.sent > self.replayed - 1:
                                continue  # a message arrived too late: the CLI answers it next
                            self.closing = ended = True
                            # Its stop began above (the result is the CLI's last word; what is
                            # left is its exit: the session file, then SessionEnd hooks).
                            item = dataclasses.replace(item, exiting=self.stopping is not None)
                        yield item
                        if isinstance(item, ToolCall):
                            self.yielded.setdefault(item.call_id, asyncio.Event()).set()
                    if ended:
                        return
        except ClaudeSDKError as exc:
            raise AgentFailure(self._explain(f"Claude Code failed: {exc}")) from exc
        raise AgentFailure(self._explain("Claude Code exited before it finished the turn."))

    def _ends(self, items: list[NormalizedItem]) -> bool:
        """Whether ``items`` end the turn (``_items`` stops after them): a turn end that no
        message sent meanwhile follows, and no failure."""
        ends = any(isinstance(i, TurnEnd) for i in items) and self.sent <= self.replayed - 1
        return ends and not any(isinstance(i, Failed) for i in items)

    def _explain(self, reason: str) -> str:
        return self.stderr.explain(reason)

    # --- stopping ----------------------------------------------------------------------------

    async def _stop(self, client: ClaudeSDKClient | None, interrupt: bool) -> None:
        """Stop the CLI and everything it started, or wait for the stop begun at the turn's
        end (cancelled meanwhile, that stop kills the group at once)."""
        if self.stopping is not None:
            await self.stopping
        else:
            await self._stop_sequence(client, interrupt)

    async def _stop_sequence(self, client: ClaudeSDKClient | None, interrupt: bool) -> None:
        """The one stop sequence (``stopping``)."""
        if client is None:  # it never started, or its failed start cleaned up after itself
            return

        async def interrupt_cli() -> None:
            await client.interrupt()

        async def release() -> None:
            await client.disconnect()  # closes stdin, reaps

        stop = TurnStop(
            self.ctx.run_id,
            "Claude Code",
            self.group,
            interrupt=interrupt_cli if self.group is not None else None,
            release=release,
        )
        await stop_turn(stop, interrupted=interrupt)


def run_claude_turn(ctx: TurnContext, settings: TurnSettings) -> AsyncGenerator[AdapterItem, None]:
    """One turn's items; the caller's cancellation (or ``aclose``) interrupts Claude and stops
    its processes. The turn's own generator: no layer re-yields each item."""
    return _Turn(ctx, settings).run()
