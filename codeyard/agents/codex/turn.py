"""One turn of Codex through ``codex app-server``: start, stream, decide, stop.

Each turn is one app-server process (a new session leader, so its process group holds every
command it runs). The first turn starts a thread; later turns, and a turn after a pause, a
cancel, a failure or a server restart, resume it by id (``thread/resume``), so the model sees
the whole conversation. Command and patch approval requests go to Codeyard's decision function;
a denial is answered ``decline`` and the reason is steered into the turn (``turn/steer``) in
words that tell the model not to retry. Operator messages sent during the turn are steered into
it too; one leaves the run's queue once Codex adds it to the turn (its ``userMessage`` item), so
a message Codex refuses, because the turn has just ended, starts the next turn instead.
Stopping is the one sequence of ``agents.stopping``: ``turn/interrupt``, then stdin is closed,
then the group gets SIGINT, SIGTERM and SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator
from importlib import resources
from typing import Any

from codeyard.agents import timing
from codeyard.agents.base import (
    SESSION_BEHIND,
    AdapterItem,
    AgentFailure,
    Concluding,
    RawOutput,
    TurnContext,
    TurnEnd,
)
from codeyard.agents.codex.normalize import (
    Failed,
    NormalizeState,
    concluding,
    mcp_tool_request,
    normalize,
    session_items,
    tool_request,
)
from codeyard.agents.codex.process import ProcessGroup, bundled_path_dir, cli_version
from codeyard.agents.codex.protocol import (
    ApprovalRequest,
    ItemStarted,
    McpApproval,
    ServerRequest,
    TurnCompleted,
    UserMessageItem,
)
from codeyard.agents.codex.rpc import LINE_LIMIT, Closed, Connection, RpcError
from codeyard.agents.codex.settings import TurnSettings
from codeyard.agents.process import explain, spawn
from codeyard.agents.stopping import STOP_GRACE, TurnStop, stop_turn
from codeyard.attachments.images import load_paths
from codeyard.domain.events import ErrorEvent, ToolCall
from codeyard.domain.tools import ToolRequest
from codeyard.sandbox import SandboxUnavailable, contain

__all__ = ["PROMPTS", "run_codex_turn", "toml_value"]

log = logging.getLogger(__name__)
PROMPTS: dict[str, str] = json.loads(
    resources.files("codeyard.agents.codex").joinpath("prompts.json").read_text("utf-8")
)
#: Seconds: the start handshake.
START_TIMEOUT = 60.0
CLIENT = {"name": "codeyard", "title": "Codeyard", "version": "1"}
#: What the app-server answers to ``thread/resume`` of a thread it has no files for.
LOST_THREAD = "no rollout found"


def toml_value(value: Any) -> str:
    """A JSON value written as a TOML value, for Codex's ``-c key=value`` overrides."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: the same escapes as JSON
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        parts = (f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(parts) + "}"
    raise ValueError(f"cannot write {value!r} as a Codex configuration value")


class _Turn:
    def __init__(self, ctx: TurnContext, settings: TurnSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.state = NormalizeState.restore(ctx.session_id, ctx.resume_state)
        self.resumed = False
        self.conn: Connection | None = None
        self.group: ProcessGroup | None = None
        #: The ``clientUserMessageId`` of each operator message steered into the turn.
        self.steered: set[str] = set()

    # --- set-up ------------------------------------------------------------------------------

    def _args(self) -> list[str]:
        args = [str(self.settings.cli)]
        for key, value in self.settings.config.items():
            args += ["-c", f"{key}={toml_value(value)}"]
        return [*args, "app-server"]

    def _env(self) -> dict[str, str]:
        """What Codex needs besides the allowlist (``codeyard.sandbox``): its options' env and
        the bundled helpers on PATH."""
        env = dict(self.settings.env)
        helpers = bundled_path_dir()
        if helpers is not None:
            path = env.get("PATH") or os.environ.get("PATH", "")
            env["PATH"] = os.pathsep.join([str(helpers), path])
        return env

    async def _spawn(self) -> Connection:
        try:
            jail = contain(
                self.ctx.sandbox,
                "codex",
                self._args(),
                self._env(),
                cwd=self.ctx.worktree,
                own_session=True,  # spawn() starts it as a session's leader
            )
        except SandboxUnavailable as exc:
            raise AgentFailure(exc.detail) from exc
        try:
            proc, self.group = await spawn(
                jail.bare,
                lead=jail.lead,
                niceness=jail.niceness,
                kind="codex",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=str(self.ctx.worktree),
                env=jail.env,
                limit=LINE_LIMIT,
            )
        except OSError as exc:
            raise AgentFailure(f"Codex did not start: {exc.strerror or exc}") from exc
        self.conn = Connection(proc)
        return self.conn

    def _thread_params(self) -> dict[str, Any]:
        s = self.settings
        params: dict[str, Any] = {
            "cwd": str(self.ctx.worktree),
            "approvalPolicy": s.approval_policy,
            "sandbox": s.sandbox,
        }
        if self.ctx.model:
            params["model"] = self.ctx.model
        if s.instructions:
            params["developerInstructions"] = s.instructions
        if s.base_instructions:
            params["baseInstructions"] = s.base_instructions
        return params

    async def _open_thread(self, conn: Connection) -> list[AdapterItem]:
        """The handshake, which resumes the run's thread (or starts one); the items announcing
        it. The thread's request goes with ``initialize`` (``Connection.handshake``)."""
        items: list[AdapterItem] = []
        result: dict[str, Any] | None = None
        if self.state.thread_id:
            params = {**self._thread_params(), "threadId": self.state.thread_id}
            try:
                result = await conn.handshake(CLIENT, "thread/resume", params)
                self.resumed = True
            except RpcError as exc:
                if LOST_THREAD not in str(exc):
                    raise
                log.info("run %s: Codex cannot resume its thread: %s", self.ctx.run_id, exc)
                lost = self.state.thread_id
                items.append(ErrorEvent(message=PROMPTS["lost_session"], detail=lost))
                self.state.thread_id = None
            if result is None:
                result = await conn.request("thread/start", self._thread_params())
        else:
            result = await conn.handshake(CLIENT, "thread/start", self._thread_params())
        timing.mark("codex thread")
        version = cli_version(self.settings.cli)[0]
        items += session_items(result, self.state, version)
        return items

    def _prompt(self) -> str:
        if self.ctx.source == "resume" and self.resumed:
            if self.ctx.resume_state.get(SESSION_BEHIND):
                return self.ctx.prompt  # the failover notice, then the turn's request
            return PROMPTS["resume"]
        return self.ctx.prompt

    async def _start(self) -> AsyncGenerator[AdapterItem, None]:
        conn = await self._spawn()
        try:
            async with asyncio.timeout(START_TIMEOUT):
                opened = await self._open_thread(conn)
                params: dict[str, Any] = {
                    "threadId": self.state.thread_id,
                    "input": [
                        {"type": "text", "text": self._prompt()},
                        *(
                            {"type": "image", "url": image.data_url}
                            for image in load_paths(list(self.ctx.images))
                        ),
                    ],
                }
                if self.settings.effort:
                    params["effort"] = self.settings.effort
                # Asked before the thread's items are handed on: the executor records them (a
                # commit) while Codex starts the turn, not before it is asked to. The turn's
                # own notifications are read only after them (``_items``).
                starting = asyncio.ensure_future(conn.request("turn/start", params))
                try:
                    for item in opened:
                        yield item
                    turn = await starting
                    timing.mark("codex turn started")
                finally:
                    if not starting.done():  # closed while the items were handed on
                        starting.cancel()
                    elif not starting.cancelled():
                        starting.exception()  # seen: raised above, or never to be
        except (RpcError, ConnectionError, TimeoutError) as exc:
            raise AgentFailure(self._explain(f"Codex did not start the turn: {exc}")) from exc
        self.state.turn_id = str((turn.get("turn") or {}).get("id") or "") or None

    # --- the stream --------------------------------------------------------------------------

    async def run(self) -> AsyncGenerator[AdapterItem, None]:
        try:
            async with contextlib.aclosing(self._start()) as starting:
                async for item in starting:
                    yield item
            feeder = asyncio.ensure_future(self._feed()) if self.ctx.next_messages else None
            try:
                async with contextlib.aclosing(self._items()) as items:
                    async for item in items:
                        yield item
            finally:
                if feeder is not None:
                    feeder.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await feeder
        except (asyncio.CancelledError, GeneratorExit):
            self.state.interrupting = True
            await self._stop(interrupt=True)
            raise
        except BaseException:
            await self._stop(interrupt=False)
            raise
        else:
            await self._stop(interrupt=False)

    async def _feed(self) -> None:
        """Steer operator messages into the running turn, in order, until Codex refuses one."""
        conn, next_messages = self.conn, self.ctx.next_messages
        assert conn is not None and next_messages is not None
        while True:
            for text in await next_messages():
                ident = f"codeyard-{self.ctx.turn}-{len(self.steered) + 1}"
                self.steered.add(ident)  # Codex may add it to the turn before it answers
                steer = {
                    "threadId": self.state.thread_id,
                    "input": [{"type": "text", "text": text}],
                    "expectedTurnId": self.state.turn_id,
                    "clientUserMessageId": ident,
                }
                try:
                    await conn.request("turn/steer", steer)
                except (RpcError, ConnectionError) as exc:
                    # The turn is over: this message and any after it stay queued, never taken
                    # in, and start the next turn.
                    log.info("run %s: Codex took no message: %s", self.ctx.run_id, exc)
                    return
                log.info("run %s: Codex accepted message %s", self.ctx.run_id, ident)

    async def _items(self) -> AsyncGenerator[AdapterItem, None]:
        conn = self.conn
        assert conn is not None
        while True:
            entry = await conn.inbox.get()
            if isinstance(entry, Closed):
                raise AgentFailure(self._explain("Codex exited before it finished the turn."))
            raw, message = entry
            yield RawOutput(raw)
            if (
                isinstance(message, ItemStarted)
                and isinstance(message.item, UserMessageItem)
                and message.item.client_id in self.steered
                and self.ctx.messages_taken is not None
            ):
                # Taken in now, not when Codex accepted the steer: input still pending when the
                # turn is interrupted, or ends at that moment, never reaches the model.
                await self.ctx.messages_taken(1)
            if concluding(message, self.state):
                yield Concluding()
            if isinstance(message, ApprovalRequest):
                async for item in self._decide(conn, message):
                    yield item
                continue
            if isinstance(message, McpApproval):
                async for item in self._decide_mcp(conn, message):
                    yield item
                continue
            if isinstance(message, ServerRequest):
                # Codex asks questions only in Plan mode, which Codeyard does not start.
                await conn.refuse(message.id, f"Codeyard does not support {message.method}.")
                continue
            for normalized in normalize(message, self.state):
                if isinstance(normalized, Failed):  # Codex's own words: the stderr adds noise
                    raise AgentFailure(normalized.reason)
                if isinstance(normalized, TurnEnd):
                    # Codex saved the thread before it said so: only its stop and exit follow
                    # (begun as the executor asks for the next item).
                    yield dataclasses.replace(normalized, exiting=True)
                    return
                yield normalized

    async def _decide(
        self, conn: Connection, message: ApprovalRequest
    ) -> AsyncIterator[AdapterItem]:
        timing.mark("codex asked")
        request = tool_request(message, self.state)
        if message.item_id not in self.state.calls:  # announce a call before its decision
            yield _announce(request)
        decision = await self.ctx.decide(request)
        if decision.allow:
            await conn.answer(message.id, {"decision": "accept"})
            timing.mark("codex answered")
            return
        await self._tell_denied(conn, message.item_id, decision.reason)
        await conn.answer(message.id, {"decision": "decline"})

    async def _decide_mcp(
        self, conn: Connection, message: McpApproval
    ) -> AsyncIterator[AdapterItem]:
        """An MCP tool call passes Codeyard's decision like any tool call; Codex takes the
        answer as an MCP elicitation result."""
        request = mcp_tool_request(message, self.state)
        if request.call_id not in self.state.calls:
            yield _announce(request)
        decision = await self.ctx.decide(request)
        if decision.allow:
            await conn.answer(message.id, {"action": "accept", "content": {}})
            return
        await self._tell_denied(conn, request.call_id, decision.reason)
        await conn.answer(message.id, {"action": "decline"})

    async def _tell_denied(self, conn: Connection, item_id: str, why: str | None) -> None:
        reason = (why or "not allowed").rstrip(".")
        told = PROMPTS["deny"].format(reason=reason)
        self.state.denied[item_id] = told
        # A decline carries no reason: the model reads it in a message steered into the same
        # turn, sent first so that it is pending before Codex asks the model again.
        steer = {
            "threadId": self.state.thread_id,
            "input": [{"type": "text", "text": told}],
            "expectedTurnId": self.state.turn_id,
        }
        try:
            await conn.request("turn/steer", steer)
        except RpcError as exc:  # the turn ended meanwhile: nothing left to steer
            log.info("run %s: could not tell Codex why: %s", self.ctx.run_id, exc)

    def _explain(self, reason: str) -> str:
        return explain(reason, self.conn.stderr if self.conn is not None else ())

    # --- stopping ----------------------------------------------------------------------------

    async def _until_turn_completed(self, conn: Connection) -> None:
        """Drain the inbox until Codex reports this turn over (it saves the thread first)."""
        while True:
            entry = await conn.inbox.get()
            if isinstance(entry, Closed):
                return
            message = entry[1]
            if isinstance(message, TurnCompleted) and message.turn_id == self.state.turn_id:
                log.info("run %s: Codex ended the turn: %s", self.ctx.run_id, message.status)
                return

    async def _stop(self, interrupt: bool) -> None:
        """Stop Codex and everything it started: the one stop sequence (``stopping``)."""
        conn, group = self.conn, self.group
        if conn is None or group is None:
            return

        async def interrupt_turn() -> None:
            params = {"threadId": self.state.thread_id, "turnId": self.state.turn_id}
            await conn.request("turn/interrupt", params)
            await self._until_turn_completed(conn)

        async def release() -> None:
            conn.close_stdin()  # the app-server exits when its input ends

        async def reap() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.proc.wait(), STOP_GRACE)
            await conn.aclose()

        live = self.state.turn_id is not None and conn.proc.returncode is None
        stop = TurnStop(
            self.ctx.run_id,
            "Codex",
            group,
            interrupt=interrupt_turn if live else None,
            release=release,
            reap=reap,
        )
        await stop_turn(stop, interrupted=interrupt)


def _announce(request: ToolRequest) -> ToolCall:
    """A call Codex asks about before announcing it as an item."""
    return ToolCall(
        call_id=request.call_id,
        tool=request.tool,
        kind=request.kind,
        title=request.tool,
        input=request.input,
    )


async def run_codex_turn(
    ctx: TurnContext, settings: TurnSettings
) -> AsyncGenerator[AdapterItem, None]:
    """Run one turn; the caller's cancellation interrupts Codex and stops its processes."""
    async with contextlib.aclosing(_Turn(ctx, settings).run()) as items:
        async for item in items:
            yield item
