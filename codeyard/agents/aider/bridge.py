"""Aider behind the Agent Client Protocol: the program Codeyard starts as the ``aider`` agent.

Aider has no structured protocol of its own (its non-interactive mode prints for a terminal and
asks y/n questions on stdin), so this bridge drives aider's Python API (``Coder``, the same
object its ``--message`` mode runs) and speaks ACP on stdio, which Codeyard's ACP client already
understands. It runs with the Python of aider's own venv (``clis/py/aider``, ``make aider``):
it imports aider and the ACP SDK only, never Codeyard.

What goes where:

* the reply streams as message chunks (reasoning as thought chunks);
* every file aider is about to edit or create is asked about first (an ``edit`` tool call with
  its ``path``), and reported done with the edited file after aider applied its blocks;
* every shell block aider suggests is an ``execute`` tool call asked about first; approved, it
  runs in the worktree and its output goes back to the model in the same turn (as aider does
  with lint and test failures: a "reflection", at most ``Coder.max_reflections`` per turn);
  rejected, the model is told the operator rejected it;
* aider's own questions (add a mentioned file, fix lint errors...) are answered no: Codeyard
  runs it unattended; it never commits (Codeyard checkpoints the worktree itself);
* the chat is saved to ``$HOME/.aider/codeyard-sessions/<id>.json`` before each model call,
  so ``session/load`` resumes it, an interrupted turn's message included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import acp
from acp import schema

_REJECTED = "The operator rejected this"
_OPTIONS = [
    schema.PermissionOption(option_id="allow", name="Allow", kind="allow_once"),
    schema.PermissionOption(option_id="reject", name="Reject", kind="reject_once"),
]


def sessions_dir() -> Path:
    return Path(os.path.expanduser("~")) / ".aider" / "codeyard-sessions"


def new_io(bridge: Bridge) -> Any:
    """Aider's terminal I/O with its questions answered for Codeyard and its errors kept."""
    from aider.io import InputOutput

    class CodeyardIO(InputOutput):  # type: ignore[misc]
        def confirm_ask(self, question: str, *args: Any, **kwargs: Any) -> bool:
            # Edits were decided by Codeyard before aider asks (see Bridge.allowed_to_edit).
            return question.startswith(("Create new file", "Allow edits to file"))

        def tool_error(self, message: str = "", strip: bool = True) -> None:
            if message.strip():
                bridge.errors.append(message.strip())
            super().tool_error(message, strip)

    return CodeyardIO(
        pretty=False,
        fancy_input=False,
        yes=None,
        input_history_file=None,
        chat_history_file=None,
        notifications=False,
    )


class Bridge:
    """One aider session: its ``Coder`` runs each prompt in a worker thread; the ACP side asks
    Codeyard and reports through the event loop."""

    def __init__(self, conn: Any, loop: asyncio.AbstractEventLoop, model: str) -> None:
        self.conn = conn
        self.loop = loop
        self.model = model
        self.session_id = ""
        self.coder: Any = None
        self.errors: list[str] = []
        self.usage = {"inputTokens": 0, "outputTokens": 0}
        self.cancelled = threading.Event()
        #: Files Codeyard allowed aider to edit in this reply: path → tool call id.
        self.pending_edits: dict[str, str] = {}

    # --- from the worker thread to the client ------------------------------------------------

    def _call(self, make: Callable[[], Any]) -> Any:
        """Run a coroutine on the loop from the worker thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(make(), self.loop).result()

    def update(self, update: Any) -> None:
        self._call(lambda: self.conn.session_update(session_id=self.session_id, update=update))

    def ask(
        self, call_id: str, title: str, kind: schema.ToolKind, raw_input: dict[str, Any]
    ) -> bool:
        self.update(
            acp.start_tool_call(call_id, title, kind=kind, status="pending", raw_input=raw_input)
        )
        tool = schema.ToolCallUpdate(
            tool_call_id=call_id, title=title, kind=kind, status="pending", raw_input=raw_input
        )
        answer = self._call(
            lambda: self.conn.request_permission(
                session_id=self.session_id, tool_call=tool, options=_OPTIONS
            )
        )
        outcome = answer.outcome
        return getattr(outcome, "option_id", None) == "allow"

    def done(self, call_id: str, ok: bool, output: str, **raw: Any) -> None:
        self.update(
            acp.update_tool_call(
                call_id,
                status="completed" if ok else "failed",
                content=[acp.tool_content(acp.text_block(output))] if output else None,
                raw_output={"output": output, **raw},
            )
        )

    # --- aider's hooks -------------------------------------------------------------------------

    def stream(self, completion: Any) -> Iterator[str]:
        """Replaces ``Coder.show_send_output_stream``: the reply as ACP chunks, not a terminal."""
        from aider.coders.base_coder import FinishReasonLength

        coder = self.coder
        for chunk in completion:
            usage = getattr(chunk, "usage", None)
            if usage is not None and getattr(usage, "prompt_tokens", None) is not None:
                self.usage["inputTokens"] += int(usage.prompt_tokens or 0)
                self.usage["outputTokens"] += int(usage.completion_tokens or 0)
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            if getattr(choice, "finish_reason", None) == "length":
                raise FinishReasonLength()
            delta = choice.delta
            thought = getattr(delta, "reasoning_content", None) or getattr(delta, "reasoning", None)
            if thought:
                self.update(acp.update_agent_thought_text(thought))
            text = getattr(delta, "content", None)
            if text:
                coder.partial_response_content += text
                self.update(acp.update_agent_message_text(text))
                yield text
            if self.cancelled.is_set():
                raise KeyboardInterrupt  # aider's own way to stop a reply

    def allowed_to_edit(self, original: Callable[[str], Any]) -> Callable[[str], Any]:
        def decide(path: str) -> Any:
            full = str(Path(self.coder.abs_root_path(path)))
            call_id = f"edit-{uuid.uuid4().hex[:12]}"
            if not self.ask(call_id, f"Edit {path}", "edit", {"path": full}):
                self.done(call_id, False, f"{_REJECTED} edit.")
                note = f"{_REJECTED} edit of {path}: it was not changed."
                self.coder.reflected_message = "\n\n".join(
                    m for m in (self.coder.reflected_message, note) if m
                )
                return None
            self.pending_edits[full] = call_id
            return original(path)

        return decide

    def apply_edits(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def apply(edits: Any, dry_run: bool = False) -> Any:
            if dry_run:  # aider checks the blocks match before it asks to edit anything
                return original(edits, dry_run=True)
            try:
                return original(edits)
            finally:
                for full, call_id in list(self.pending_edits.items()):
                    self.done(call_id, True, f"Edited {full}")
                self.pending_edits.clear()

        return apply

    def run_shell_commands(self, original: Callable[[], str]) -> Callable[[], str]:
        def run() -> str:
            try:
                return original()
            finally:
                # Aider keeps a reply's commands until the next message: a reflection in the
                # same turn would run them again.
                self.coder.shell_commands = []

        return run

    def shell(self, commands_str: str, group: Any) -> str:
        """Replaces ``Coder.handle_shell_commands``: ask, run, and feed the output back."""
        from aider.run_cmd import run_cmd

        lines = [c.strip() for c in commands_str.strip().splitlines()]
        commands = [c for c in lines if c and not c.startswith("#")]
        if not commands:
            return ""
        command = "\n".join(commands)
        call_id = f"shell-{uuid.uuid4().hex[:12]}"
        coder = self.coder
        if not self.ask(call_id, command, "execute", {"command": command}):
            self.done(call_id, False, f"{_REJECTED} command.")
            note = f"{_REJECTED} shell command; it did not run:\n{command}"
        else:
            outputs: list[str] = []
            status = 0
            for line in commands:
                status, output = run_cmd(line, error_print=coder.io.tool_error, cwd=coder.root)
                outputs.append(output or "")
                if status:
                    break
            output = "".join(outputs)
            self.done(call_id, status == 0, output, exit_code=status)
            note = f"Output from {command} (exit code {status}):\n{output}"
        coder.reflected_message = "\n\n".join(m for m in (coder.reflected_message, note) if m)
        return ""

    # --- sessions ------------------------------------------------------------------------------

    def open(self, cwd: str, session_id: str | None = None) -> None:
        from aider import models
        from aider.coders import Coder
        from aider.repo import GitRepo

        # Aider downloads LiteLLM's model map from GitHub once a day; LiteLLM's own bundled copy
        # answers instead (offline, and no start-up wait on a network that may be closed).
        models.model_info_manager._update_cache = lambda: None
        io = new_io(self)
        model = models.Model(self.model)
        # Token counts come with the stream (an OpenAI-compatible server sends them last).
        stream_usage = {"stream_options": {"include_usage": True}}
        model.extra_params = {**(model.extra_params or {}), **stream_usage}
        try:
            repo = GitRepo(io, [], cwd)
        except Exception:  # aider works without git, as in a plain folder
            repo = None
        os.chdir(cwd)
        coder = Coder.create(
            main_model=model,
            io=io,
            repo=repo,
            auto_commits=False,
            dirty_commits=False,
            map_tokens=0,
            stream=True,
            auto_lint=False,
            detect_urls=False,
            suggest_shell_commands=True,
        )
        coder.show_send_output_stream = self.stream
        coder.handle_shell_commands = self.shell
        coder.allowed_to_edit = self.allowed_to_edit(coder.allowed_to_edit)
        coder.apply_edits = self.apply_edits(coder.apply_edits)
        coder.run_shell_commands = self.run_shell_commands(coder.run_shell_commands)
        self.coder = coder
        self.session_id = session_id or f"aider-{uuid.uuid4()}"
        if session_id is not None:
            saved = json.loads((sessions_dir() / f"{session_id}.json").read_text())
            coder.done_messages = saved["messages"]

    def save(self, pending: str | None = None) -> None:
        """The chat so far (and a message being answered), for ``session/load``."""
        messages = list(self.coder.done_messages) + list(self.coder.cur_messages)
        if pending is not None:
            messages.append({"role": "user", "content": pending})
        folder = sessions_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.session_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"messages": messages, "model": self.model}))
        tmp.replace(path)

    def run(self, text: str) -> schema.StopReason:
        """One prompt, in the worker thread; returns the ACP stop reason."""
        self.errors.clear()
        self.save(pending=text)
        coder = self.coder
        coder.run(with_message=text, preproc=False)
        # Aider adds the answered message itself: move the turn to the saved history.
        coder.move_back_cur_messages(None)
        self.save()
        if self.cancelled.is_set():
            return "cancelled"
        if not coder.partial_response_content and self.errors:
            raise acp.RequestError.internal_error({"message": self.errors[-1]})
        return "end_turn"


class AiderAgent:
    """The ACP agent: one session per process (Codeyard starts one process per turn)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.bridge: Bridge | None = None
        self.conn: Any = None
        self.cancelled = asyncio.Event()

    def on_connect(self, conn: Any) -> None:
        self.conn = conn

    async def initialize(self, protocol_version: int, **kwargs: Any) -> schema.InitializeResponse:
        from aider import __version__

        return schema.InitializeResponse(
            protocol_version=acp.PROTOCOL_VERSION,
            agent_capabilities=schema.AgentCapabilities(load_session=True),
            agent_info=schema.Implementation(name="aider", version=__version__),
        )

    async def _open(self, cwd: str, session_id: str | None) -> Bridge:
        bridge = Bridge(self.conn, asyncio.get_running_loop(), self.model)
        await asyncio.to_thread(bridge.open, cwd, session_id)
        self.bridge = bridge
        return bridge

    async def new_session(self, cwd: str, **kwargs: Any) -> schema.NewSessionResponse:
        bridge = await self._open(cwd, None)
        return schema.NewSessionResponse(session_id=bridge.session_id)

    async def load_session(
        self, cwd: str, session_id: str, **kwargs: Any
    ) -> schema.LoadSessionResponse:
        if not (sessions_dir() / f"{session_id}.json").is_file():
            raise acp.RequestError.resource_not_found(session_id)
        bridge = await self._open(cwd, session_id)
        for message in bridge.coder.done_messages:
            content = message.get("content")
            if not isinstance(content, str) or not content:
                continue
            if message.get("role") == "user":
                update: Any = acp.update_user_message_text(content)
            else:
                update = acp.update_agent_message_text(content)
            await self.conn.session_update(session_id=session_id, update=update)
        return schema.LoadSessionResponse()

    async def authenticate(self, method_id: str, **kwargs: Any) -> None:
        return None

    async def prompt(self, prompt: list[Any], session_id: str, **kwargs: Any) -> Any:
        bridge = self.bridge
        if bridge is None or bridge.session_id != session_id:
            raise acp.RequestError.invalid_params({"sessionId": "no such session here"})
        text = "\n".join(getattr(block, "text", "") for block in prompt).strip()
        bridge.cancelled.clear()
        self.cancelled = asyncio.Event()
        bridge.usage = {"inputTokens": 0, "outputTokens": 0}
        work = asyncio.ensure_future(asyncio.to_thread(bridge.run, text))
        cancel = asyncio.ensure_future(self.cancelled.wait())
        await asyncio.wait({work, cancel}, return_when=asyncio.FIRST_COMPLETED)
        cancel.cancel()
        if not work.done():
            # A model call cannot be cut short from here: the turn answers at once and the
            # thread stops at the reply's next chunk or with the process (its input ends).
            # The message was saved before the call, so a resumed session has it.
            return schema.PromptResponse(stop_reason="cancelled")
        stop = work.result()
        usage = schema.Usage(
            input_tokens=bridge.usage["inputTokens"],
            output_tokens=bridge.usage["outputTokens"],
            total_tokens=bridge.usage["inputTokens"] + bridge.usage["outputTokens"],
        )
        return schema.PromptResponse(stop_reason=stop, usage=usage)

    async def cancel(self, session_id: str, **kwargs: Any) -> None:
        if self.bridge is not None:
            self.bridge.cancelled.set()
            self.cancelled.set()


async def _serve(model: str, out: Any) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=50 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, out)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    agent: Any = AiderAgent(model)  # the SDK's Agent protocol, in the methods aider needs
    await acp.run_agent(agent, writer, reader)


def main() -> None:
    parser = argparse.ArgumentParser(description="Aider as an ACP agent (for Codeyard).")
    parser.add_argument("--model", required=True, help="aider's model name, e.g. openai/gpt-4.1")
    args = parser.parse_args()
    # ACP keeps stdout to itself: aider prints freely, so its stdout becomes stderr.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # LiteLLM reads its model map from its wheel, not from the network.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    code = 0
    try:
        asyncio.run(_serve(args.model, out))
    except KeyboardInterrupt:  # Codeyard's SIGINT when a turn is stopped
        code = 130
    finally:
        # A reply still streaming in the worker thread must not keep the process alive.
        os._exit(code)


if __name__ == "__main__":
    main()
