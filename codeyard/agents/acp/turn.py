"""One turn of an ACP agent: start it, open or load the session, prompt, decide, stop.

Each turn is one agent process, started as the leader of a new session so one process group
holds it and every tool process it starts. A later turn (a message, a resume after pause, cancel
or restart) loads the saved session with ``session/load``. The JSON-RPC plumbing is the ACP
SDK's :class:`acp.connection.Connection`; messages are read raw and typed in ``wire``.

Permission requests are answered after Codeyard's decision function: the call is announced
(``tool.call``) first, then decided, then the option of the matching ``kind`` is picked. Stopping
is the one sequence of ``agents.stopping``: ``session/cancel``, then stdin is closed, then the
process group gets SIGINT, SIGTERM and SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
from collections.abc import AsyncGenerator
from importlib import resources
from typing import Any

from acp.connection import Connection, StreamDirection, StreamEvent
from acp.exceptions import RequestError
from acp.meta import PROTOCOL_VERSION

from codeyard.agents.acp.launch import Launch
from codeyard.agents.acp.models import model_of, switch_method
from codeyard.agents.acp.normalize import (
    Failed,
    NormalizeState,
    denied,
    finish,
    normalize,
    permission,
)
from codeyard.agents.acp.permissions import CANCELLED, Permission, pick
from codeyard.agents.acp.wire import (
    error_text,
    parse_permission,
    parse_prompt_result,
    parse_update,
)
from codeyard.agents.base import AdapterItem, AgentFailure, RawOutput, SessionUpdate, TurnContext
from codeyard.agents.mcp_servers import acp_servers
from codeyard.agents.process import ProcessGroup, StderrRing, spawn
from codeyard.agents.stopping import STOP_GRACE, TurnStop, stop_turn
from codeyard.domain.events import AgentSession, ErrorEvent
from codeyard.sandbox import SandboxUnavailable, contain

__all__ = ["PROMPTS", "Launch", "run_acp_turn"]

log = logging.getLogger(__name__)
PROMPTS: dict[str, str] = json.loads(
    resources.files("codeyard.agents.acp").joinpath("prompts.json").read_text("utf-8")
)
#: Seconds: to start and open a session.
START_TIMEOUT = 90.0
#: Seconds of silence that end a ``session/load`` history replay, and the longest wait for it.
REPLAY_QUIET = 0.3
REPLAY_LIMIT = 10.0
STDERR_LINES = 40
RAW_LIMIT = 20_000
#: Line limit of the agent's stdout (OpenCode's ``session/new`` lists every model it knows).
READ_LIMIT = 64 * 1024 * 1024


#: What the connection's callbacks hand the turn: raw output, a permission request to decide,
#: or ``("update", params)`` of a ``session/update``.
_Queued = RawOutput | Permission | tuple[str, Any]


class _Turn:
    def __init__(self, ctx: TurnContext, launch: Launch) -> None:
        self.ctx = ctx
        self.launch = launch
        self.state = NormalizeState(
            prefix=f"{ctx.run_id}-t{ctx.turn}", error_marker=launch.error_marker
        )
        self.queue: asyncio.Queue[_Queued] = asyncio.Queue()
        self.stderr = StderrRing(STDERR_LINES)
        self.proc: asyncio.subprocess.Process | None = None
        self.group: ProcessGroup | None = None
        self.conn: Connection | None = None
        self.session_id: str | None = None
        self.prompt_task: asyncio.Future[Any] | None = None
        #: The ACP method that changes this session's model, if the agent offered one.
        self.switch_method: str | None = None
        self.exited: asyncio.Task[int] | None = None
        self.stderr_task: asyncio.Task[None] | None = None
        #: While ``session/load`` replays the history, its updates are not news.
        self.loading = False
        #: Set whenever the agent sends anything.
        self.heard = asyncio.Event()

    # --- the connection's callbacks ----------------------------------------------------------

    async def handle(self, method: str, params: Any, is_notification: bool) -> Any:
        """Requests and notifications from the agent (no await before queueing: keeps order)."""
        if method == "session/update":
            if not self.loading:
                self.queue.put_nowait(("update", params))
            return None
        if method == "session/request_permission":
            answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self.queue.put_nowait(Permission(params, answer))
            return await answer
        if is_notification:
            return None
        raise RequestError.method_not_found(method)

    def observe(self, event: StreamEvent) -> None:
        if event.direction is StreamDirection.INCOMING:
            self.heard.set()
            text = json.dumps(event.message, ensure_ascii=False)
            if len(text) > RAW_LIMIT:
                text = text[:RAW_LIMIT] + "…"
            self.queue.put_nowait(RawOutput(text))

    # --- set-up ------------------------------------------------------------------------------

    async def _start(self) -> Connection:
        try:
            jail = contain(
                self.ctx.sandbox,
                self.launch.provider,
                self.launch.argv,
                self.launch.env,
                writable=self.launch.scratch,
                cwd=self.ctx.worktree,
                own_session=True,  # spawn() starts it as a session's leader
            )
        except SandboxUnavailable as exc:
            raise AgentFailure(exc.detail) from exc
        try:
            proc, group = await spawn(
                jail.bare,
                lead=jail.lead,
                niceness=jail.niceness,
                kind=self.launch.provider,
                cwd=self.ctx.worktree,
                env=jail.env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                limit=READ_LIMIT,
            )
        except OSError as exc:
            raise AgentFailure(
                f"{self.launch.label} could not be started ({self.launch.argv[0]}): "
                f"{exc.strerror or exc}"
            ) from exc
        self.proc = proc
        self.group = group
        self.exited = asyncio.ensure_future(proc.wait())
        self.stderr_task = asyncio.ensure_future(self._read_stderr(proc))
        assert proc.stdin is not None and proc.stdout is not None
        self.conn = Connection(self.handle, proc.stdin, proc.stdout, observers=[self.observe])
        return self.conn

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        await self.stderr.read(proc.stderr)

    async def _call(self, method: str, params: dict[str, Any], timeout: float | None) -> Any:
        """A request; fails the turn with the agent's words when it errs, exits or hangs."""
        assert self.conn is not None and self.exited is not None
        request = asyncio.ensure_future(self.conn.send_request(method, params))
        try:
            done, _ = await asyncio.wait(
                {request, self.exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:
            request.cancel()
            raise
        if request in done:
            try:
                return request.result()
            except RequestError as exc:
                raise AgentFailure(self._explain(self._failed(method, exc))) from exc
            except ConnectionError as exc:
                raise AgentFailure(self._explain(self._gone(method))) from exc
        request.cancel()
        if self.exited in done:
            raise AgentFailure(self._explain(self._gone(method)))
        raise AgentFailure(self._explain(f"{self.launch.label} did not answer {method}."))

    def _failed(self, method: str, exc: RequestError) -> str:
        label = self.launch.label
        detail = error_text(str(exc))
        data = exc.data if isinstance(exc.data, dict) else {}
        # ``Internal error`` with the model API's words in ``data``: ``details`` (Qwen Code),
        # ``message`` (Codex's ACP adapter, the API's JSON error body).
        for key in ("details", "message"):
            words = data.get(key)
            if isinstance(words, str) and words and words not in detail:
                detail = f"{detail}: {error_text(words)}"
                break
        if method == "session/prompt":
            return f"{label} failed the turn: {detail}"
        return f"{label} refused {method}: {detail}"

    def _gone(self, method: str) -> str:
        code = self.proc.returncode if self.proc is not None else None
        return f"{self.launch.label} exited (code {code}) before it answered {method}."

    def _explain(self, reason: str) -> str:
        return self.stderr.explain(reason)

    async def _open_session(self, init: Any) -> AsyncGenerator[AdapterItem, None]:
        """Load the run's session if there is one and the agent can, else start a new one."""
        ctx, label = self.ctx, self.launch.label
        caps = init.get("agentCapabilities") if isinstance(init, dict) else None
        can_load = isinstance(caps, dict) and caps.get("loadSession") is True
        servers = acp_servers(self.launch.mcp_servers, caps, self.launch.mcp_commands)
        if len(servers) < len(self.launch.mcp_names):
            given = {s["name"] for s in servers}
            left = [n for n in self.launch.mcp_names if n not in given]
            log.warning("%s does not speak MCP over HTTP: MCP servers %s left out", label, left)
        where = {"cwd": str(ctx.worktree), "mcpServers": servers}
        result: Any = None
        if ctx.session_id and can_load:
            self.loading = True
            try:
                result = await self._call(
                    "session/load", {"sessionId": ctx.session_id, **where}, START_TIMEOUT
                )
                self.session_id = ctx.session_id
                await self._replayed()
            except AgentFailure as exc:
                if self.exited is not None and self.exited.done():
                    raise
                message = PROMPTS["lost_session"].format(agent=label)
                yield ErrorEvent(message=message, detail=str(exc))
            finally:
                self.loading = False
        elif ctx.session_id:
            message = PROMPTS["no_load"].format(agent=label)
            yield ErrorEvent(message=message, detail=ctx.session_id)
        if self.session_id is None:
            result = await self._call("session/new", where, START_TIMEOUT)
            session_id = result.get("sessionId") if isinstance(result, dict) else None
            if not isinstance(session_id, str):
                raise AgentFailure(f"{label} answered session/new without a session id.")
            self.session_id = session_id
        model = model_of(result) or ctx.model
        self.switch_method = switch_method(result)
        if self.launch.set_model:
            params = {"sessionId": self.session_id, "modelId": self.launch.set_model}
            await self._call("session/set_model", params, START_TIMEOUT)
            model = self.launch.set_model
        info = init.get("agentInfo") if isinstance(init, dict) else None
        version = info.get("version") if isinstance(info, dict) else None
        yield AgentSession(
            session_id=self.session_id,
            provider=self.launch.provider,
            cli_version=version if isinstance(version, str) else self.launch.cli_version,
            model=model,
            tools=[],
        )
        yield SessionUpdate(self.session_id, {})

    async def _replayed(self) -> None:
        """Wait out the history replay of ``session/load``: agents may stream it after their
        answer (Gemini CLI does), and nothing new can come before the prompt is sent."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REPLAY_LIMIT
        while loop.time() < deadline:
            self.heard.clear()
            try:
                await asyncio.wait_for(self.heard.wait(), REPLAY_QUIET)
            except TimeoutError:
                return

    # --- the turn ----------------------------------------------------------------------------

    def _prompt_text(self) -> str:
        # Agents may drop an interrupted turn from the session (Gemini CLI does): repeat it.
        if self.ctx.source == "resume" and self.session_id == self.ctx.session_id:
            return PROMPTS["resume"].format(prompt=self.ctx.prompt)
        return self.ctx.prompt

    async def run(self) -> AsyncGenerator[AdapterItem, None]:
        interrupted = False
        try:
            await self._start()
            client_caps = {"fs": {"readTextFile": False, "writeTextFile": False}, "terminal": False}
            init = await self._call(
                "initialize",
                {"protocolVersion": PROTOCOL_VERSION, "clientCapabilities": client_caps},
                START_TIMEOUT,
            )
            if self.launch.auth_method:
                await self._call(
                    "authenticate", {"methodId": self.launch.auth_method}, START_TIMEOUT
                )
            async with contextlib.aclosing(self._open_session(init)) as opening:
                async for item in opening:
                    yield item
            async with contextlib.aclosing(self._prompt()) as prompting:
                async for item in prompting:
                    yield item
        except (asyncio.CancelledError, GeneratorExit):
            interrupted = True
            raise
        finally:
            await self._stop(interrupted)

    async def _prompt(self) -> AsyncGenerator[AdapterItem, None]:
        params = {
            "sessionId": self.session_id,
            "prompt": [{"type": "text", "text": self._prompt_text()}],
        }
        self.prompt_task = asyncio.ensure_future(self._call("session/prompt", params, None))
        switcher = (
            asyncio.ensure_future(self._switch())
            if self.ctx.next_model is not None and self.switch_method is not None
            else None
        )
        try:
            async with contextlib.aclosing(self._prompting()) as items:
                async for item in items:
                    yield item
        finally:
            if switcher is not None:
                switcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await switcher

    async def _switch(self) -> None:
        """Change the session's model while the prompt runs, when the run's model is switched:
        the agent uses it from its next model call. A refusal is logged; the next turn starts
        with the new model anyway. The provider's default (None) cannot be named over ACP."""
        assert self.ctx.next_model is not None and self.ctx.model_applied is not None
        while True:
            model = await self.ctx.next_model()
            if model is None or self.switch_method is None:
                continue
            params = {"sessionId": self.session_id, "modelId": model}
            try:
                await self._call(self.switch_method, params, START_TIMEOUT)
            except AgentFailure as exc:
                log.warning(
                    "run %s: mid-turn switch to %s refused: %s", self.ctx.run_id, model, exc
                )
                continue
            await self.ctx.model_applied(model)

    async def _prompting(self) -> AsyncGenerator[AdapterItem, None]:
        assert self.prompt_task is not None
        while True:
            getter = asyncio.ensure_future(self.queue.get())
            try:
                done, _ = await asyncio.wait(
                    {getter, self.prompt_task},
                    timeout=self._silence_limit(),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                getter.cancel()
            if not done:
                raise AgentFailure(self._explain(self._unreachable()))
            if getter.done() and not getter.cancelled():
                async with contextlib.aclosing(self._consume(getter.result())) as items:
                    async for item in items:
                        yield item
                continue
            break
        for _ in range(3):  # updates sent just before the answer are handled by queued tasks
            await asyncio.sleep(0)
        while not self.queue.empty():
            async with contextlib.aclosing(self._consume(self.queue.get_nowait())) as items:
                async for item in items:
                    yield item
        result = parse_prompt_result(self.prompt_task.result())
        for end in finish(result, self.state):
            if isinstance(end, Failed):
                raise AgentFailure(
                    self._explain(f"{self.launch.label} failed the turn: {end.reason}")
                )
            yield end

    def _silence_limit(self) -> float | None:
        """How long the agent may send nothing: ``model_unreachable_seconds`` while it is in a
        model call, no limit while one of its tools runs (a build may be quiet for minutes).
        Agents retry a dead model API on their own and silently on the protocol (Gemini CLI,
        OpenCode, Claude Code's adapter keep at it for minutes), so silence is the one sign
        every ACP agent gives; approvals are awaited outside this wait."""
        running = any(not c.ended and c.denied is None for c in self.state.calls.values())
        return None if running else self.ctx.model_unreachable_seconds

    def _unreachable(self) -> str:
        seconds = self.ctx.model_unreachable_seconds
        return (
            f"The model could not be reached for {seconds:g} s: {self.launch.label} sent "
            "nothing while calling it. Check the provider's address and key in the run's agent "
            "options (see `codeyard fake-llm` for working examples), then resume."
        )

    async def _consume(self, item: _Queued) -> AsyncGenerator[AdapterItem, None]:
        if isinstance(item, Permission):
            async with contextlib.aclosing(self._decide(item)) as deciding:
                async for out in deciding:
                    yield out
        elif isinstance(item, tuple):
            for event in normalize(parse_update(item[1]), self.state):
                yield event
        else:
            yield item

    async def _decide(self, pending: Permission) -> AsyncGenerator[AdapterItem, None]:
        request = parse_permission(pending.params)
        if request is None or self.prompt_task is None or self.prompt_task.done():
            pending.answer.set_result(CANCELLED)
            return
        events, tool_request = permission(request, self.state)
        for event in events:
            yield event
        try:
            decision = await self.ctx.decide(tool_request)
        except BaseException:
            if not pending.answer.done():
                pending.answer.set_result(CANCELLED)
            raise
        if not decision.allow:
            reason = (decision.reason or "not allowed").rstrip(".")
            denied(tool_request.call_id, PROMPTS["deny"].format(reason=reason), self.state)
        if not pending.answer.done():
            pending.answer.set_result(pick(request.options, decision.allow))

    # --- stopping ----------------------------------------------------------------------------

    async def _stop(self, interrupt: bool) -> None:
        """Stop the agent and everything it started: the one stop sequence (``stopping``)."""
        conn, prompt = self.conn, self.prompt_task

        async def cancel_prompt() -> None:
            assert conn is not None and prompt is not None
            await conn.send_notification("session/cancel", {"sessionId": self.session_id})
            await asyncio.shield(prompt)

        async def release() -> None:
            while not self.queue.empty():  # permission requests nobody will answer now
                item = self.queue.get_nowait()
                if isinstance(item, Permission) and not item.answer.done():
                    item.answer.set_result(CANCELLED)
            if prompt is not None and not prompt.done():
                prompt.cancel()
                await asyncio.gather(prompt, return_exceptions=True)  # its outcome is moot now
            if self.proc is not None and self.proc.stdin is not None:
                self.proc.stdin.close()
            if not self.launch.exits_on_eof and self.group is not None:
                self.group.interrupt()
            if conn is not None:
                await conn.close()

        async def reap() -> None:
            if self.exited is not None:
                try:
                    await asyncio.wait_for(self.exited, STOP_GRACE)
                except TimeoutError:
                    log.warning("run %s: the agent was not reaped after SIGKILL", self.ctx.run_id)
            await self._close_pipes()

        live = conn is not None and prompt is not None and not prompt.done()
        stop = TurnStop(
            self.ctx.run_id,
            self.launch.label,
            self.group,
            interrupt=cancel_prompt if live else None,
            release=release,
            reap=reap,
        )
        try:
            await stop_turn(stop, interrupted=interrupt)
        finally:
            for folder in self.launch.scratch:
                shutil.rmtree(folder, ignore_errors=True)

    async def _close_pipes(self) -> None:
        """Read the pipes to their end so the subprocess transport closes (it warns if not)."""
        proc = self.proc
        if proc is not None and proc.stdout is not None:
            try:
                await asyncio.wait_for(proc.stdout.read(), STOP_GRACE)
            except (TimeoutError, OSError) as exc:
                log.info("run %s: the agent's output did not end: %r", self.ctx.run_id, exc)
        try:
            if self.stderr_task is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(self.stderr_task), STOP_GRACE)
                except Exception as exc:  # the tail is only for messages: note why it is short
                    log.info("run %s: reading the agent's stderr: %r", self.ctx.run_id, exc)
                self.stderr_task.cancel()
                await asyncio.gather(self.stderr_task, return_exceptions=True)
        finally:  # even when the reap's time is up: a transport left open warns
            transport = getattr(proc, "_transport", None)  # asyncio offers no public close
            if transport is not None and not transport.is_closing():
                transport.close()


async def run_acp_turn(ctx: TurnContext, launch: Launch) -> AsyncGenerator[AdapterItem, None]:
    """Run one turn; the caller's cancellation cancels the prompt and stops the processes."""
    async with contextlib.aclosing(_Turn(ctx, launch).run()) as items:
        async for item in items:
            yield item
