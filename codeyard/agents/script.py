"""The ``script`` provider: a scripted agent for tests and demos (API.md, "The script provider").

It goes through exactly the pipeline real agents use: its ``write``/``edit``/``bash`` steps are
tool calls decided by the same function, ``bash`` runs for real in the worktree, and its progress
is resumable (``state.step``), so a run interrupted by a crash continues from its next step.

A ``bash`` step runs once even when the server dies after it finished and before its result
was stored: the step's shell, outside the sandbox, writes its exit status to a mark in the
worktree's private git directory (``codeyard-steps/<turn>_<step>``) as it ends; the resumed
turn finds the mark and reports that result instead of running the command again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from codeyard import crashpoints
from codeyard.agents.base import (
    AdapterItem,
    AgentFailure,
    Capabilities,
    RawOutput,
    SessionUpdate,
    TurnContext,
    TurnEnd,
)
from codeyard.agents.process import TIE_PARENT_ENV, fork_tie_prefix, spawn
from codeyard.domain.errors import ValidationFailed
from codeyard.domain.events import (
    AgentMessage,
    AgentSession,
    AgentThinking,
    Task,
    TaskUpdated,
    ToolCall,
    Usage,
    tool_result,
)
from codeyard.domain.tools import ToolRequest
from codeyard.sandbox import Sandbox, SandboxUnavailable, contain

#: The provider's registered name.
NAME = "script"
#: A ``bash`` step's output when it had run to its end before a restart (it is not run again).
PROMPTS_RAN_BEFORE = "(this step ran to its end before the server restarted; not run again)"

STEP_KINDS = ("say", "think", "write", "edit", "bash", "sleep", "usage", "tasks", "ask", "fail")


def _step_error(index: int, msg: str) -> dict[str, Any]:
    return {"loc": ["agent_options", "scenario", "steps", index], "msg": msg}


def validate_steps(steps: Any, where: str = "scenario") -> list[dict[str, Any]]:
    """Every problem with a step list, as validation errors (empty when valid)."""
    if not isinstance(steps, list):
        return [{"loc": ["agent_options", where, "steps"], "msg": "must be a list of steps"}]
    errors = []
    for i, step in enumerate(steps):
        kinds = [k for k in STEP_KINDS if isinstance(step, dict) and k in step]
        if len(kinds) != 1:
            errors.append(
                _step_error(i, f"each step needs exactly one of: {', '.join(STEP_KINDS)}")
            )
            continue
        kind, value = kinds[0], step[kinds[0]]
        if kind == "write" and not (
            isinstance(value, dict) and {"path", "content"} <= value.keys()
        ):
            errors.append(_step_error(i, "write needs {path, content}"))
        elif kind == "edit" and not (
            isinstance(value, dict) and {"path", "old", "new"} <= value.keys()
        ):
            errors.append(_step_error(i, "edit needs {path, old, new}"))
        elif kind == "sleep" and not isinstance(value, int | float):
            errors.append(_step_error(i, "sleep needs a number of seconds"))
        elif kind == "tasks" and not isinstance(value, list):
            errors.append(_step_error(i, "tasks needs a list"))
        elif kind == "usage" and not isinstance(value, dict):
            errors.append(_step_error(i, "usage needs an object"))
        elif kind in ("say", "think", "bash", "ask", "fail") and not isinstance(value, str):
            errors.append(_step_error(i, f"{kind} needs a string"))
    return errors


def _resolve_inside(worktree: Path, rel: str) -> Path:
    root = worktree.resolve()
    target = (root / rel).resolve()
    if target != root and root not in target.parents:
        raise ValueError(f"path '{rel}' is outside the worktree")
    return target


#: Runs the contained command (a child, tied to this shell: ``fork_tie_prefix``), then writes
#: its exit status to the mark (``$1``) atomically.
_MARKED = (
    f'm=$1; shift; {TIE_PARENT_ENV}=$$ "$@"; c=$?; '
    'echo "$c" > "$m.tmp" && /bin/mv -f "$m.tmp" "$m"; exit "$c"'
)


def step_marks(worktree: Path) -> Path | None:
    """Where a worktree's finished ``bash`` steps are marked: its private git directory (never
    part of a diff, removed with the worktree, outside the sandbox's reach for the agent)."""
    dotgit = worktree / ".git"
    if dotgit.is_dir():
        return dotgit / "codeyard-steps"
    try:
        text = dotgit.read_text()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    gitdir = Path(text.split(":", 1)[1].strip())
    return (gitdir if gitdir.is_absolute() else worktree / gitdir) / "codeyard-steps"


def _finished(mark: Path | None) -> int | None:
    """The exit status a mark holds (the step ran to its end before), else None."""
    if mark is None:
        return None
    try:
        return int(mark.read_text().strip())
    except (OSError, ValueError):
        return None


async def _run_bash(
    command: str,
    cwd: Path,
    timeout: float,
    extra_env: dict[str, Any] | None = None,
    sandbox: Sandbox | None = None,
    mark: Path | None = None,
) -> tuple[int | None, str, bool]:
    """Run ``command`` in its own process group; returns (exit code, output, timed_out).

    ``extra_env`` (the run's ``env`` option, env sets included) is added to the allowlisted
    environment; the shell runs in the run's ``sandbox`` (on when none is given). ``mark``:
    the file the exit status is written to as the command ends (see the module).
    """
    env = {str(k): str(v) for k, v in (extra_env or {}).items()}
    try:
        jail = contain(
            sandbox or Sandbox(),
            "script",
            ["/bin/bash", "-c", command],
            env,
            cwd=cwd,
            own_session=True,  # spawn() starts it as a session's leader
        )
    except SandboxUnavailable as exc:
        raise AgentFailure(exc.detail) from exc
    argv = jail.bare  # spawn's gate runs jail.lead and sets jail.niceness
    if mark is not None:
        mark.parent.mkdir(parents=True, exist_ok=True)
        # The shell forks the command (it writes the mark after): the child ties itself anew.
        argv = ["/bin/sh", "-c", _MARKED, "codeyard-step", str(mark), *fork_tie_prefix(), *argv]
    # A supervised group: tied to the server's life and recorded on the run (issue 12).
    proc, group = await spawn(
        argv,
        kind="script-bash",
        lead=jail.lead,
        niceness=jail.niceness,
        cwd=cwd,
        env=jail.env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        return proc.returncode, out.decode(errors="replace"), False
    except TimeoutError:
        group.kill()
        out, _ = await proc.communicate()
        return None, out.decode(errors="replace"), True
    except asyncio.CancelledError:
        group.kill()
        await proc.wait()
        raise
    finally:
        await group.untrack()


def require_scenario(options: dict[str, Any]) -> None:
    """Refuse to start a script run without a scenario: the script agent does only what its
    steps say, so without them the run would end at once with no changes and still offer a
    merge (issue 14). An explicit ``{"steps": []}`` (or ``on_message``) is a choice; drafts
    may wait for one, and are checked when started."""
    if "scenario" in options or "on_message" in options:
        return
    raise ValidationFailed(
        "The script agent needs a scenario: it does only what its steps say, so this run would "
        'do nothing. Give agent_options.scenario = {"steps": [{"say": "…"}, {"write": '
        '{"path": "…", "content": "…"}}, {"bash": "…"}]} (`codeyard run --scenario FILE`), '
        "or pick an agent that reads the prompt (claude-code, codex, …).",
        errors=[{"loc": ["body", "agent_options", "scenario"], "msg": "required for script"}],
    )


async def _switch_models(ctx: TurnContext) -> None:
    """A scripted agent has no model of its own: it takes a mid-turn switch at once, so the
    ``usage`` steps after it are priced with the new model (how a real agent's would be)."""
    assert ctx.next_model is not None and ctx.model_applied is not None
    while True:
        await ctx.model_applied(await ctx.next_model())


class ScriptProvider:
    name = NAME
    capabilities = Capabilities(
        approvals=True,
        resume=True,
        interrupt=True,
        mid_turn_input=False,
        usage=True,
        cost=True,
        mid_turn_model=True,
    )

    def version(self) -> str | None:
        return "1"

    def problem(self) -> str | None:
        return None

    def validate_options(self, options: dict[str, Any]) -> None:
        scenario = options.get("scenario")
        errors: list[dict[str, Any]] = []
        if scenario is not None:
            if not isinstance(scenario, dict):
                errors.append({"loc": ["agent_options", "scenario"], "msg": "must be an object"})
            else:
                errors += validate_steps(scenario.get("steps", []))
        if "on_message" in options:
            errors += validate_steps(options["on_message"], "on_message")
        if errors:
            raise ValidationFailed(
                "The script scenario is not valid: " + "; ".join(e["msg"] for e in errors),
                errors=errors,
            )

    def _steps_for(self, ctx: TurnContext) -> tuple[str, list[dict[str, Any]]]:
        if ctx.source == "resume" and ctx.resume_state.get("phase"):
            return ctx.resume_state["phase"], ctx.resume_state.get("steps", [])
        # A turn interrupted before its first step finished starts over as it began.
        source = ctx.resumed_source if ctx.source == "resume" else ctx.source
        if source == "create":
            return "scenario", list((ctx.options.get("scenario") or {}).get("steps", []))
        on_message = ctx.options.get("on_message")
        if on_message is not None:
            return "message", list(on_message)
        return "message", [{"say": f"You said: {ctx.prompt}"}]

    async def run_turn(self, ctx: TurnContext) -> AsyncIterator[AdapterItem]:
        switcher = asyncio.ensure_future(_switch_models(ctx)) if ctx.next_model else None
        try:
            async for item in self._run_steps(ctx):
                yield item
        finally:
            if switcher is not None:
                switcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await switcher

    async def _run_steps(self, ctx: TurnContext) -> AsyncIterator[AdapterItem]:
        phase, steps = self._steps_for(ctx)
        resumed = ctx.source == "resume" and bool(ctx.resume_state.get("phase"))
        start = int(ctx.resume_state.get("step", 0)) if ctx.source == "resume" else 0
        # The turn whose steps these are (a resumed turn has a number of its own): the key of
        # its steps' marks, kept in the state from the turn's start.
        origin = int(ctx.resume_state.get("turn") or ctx.turn) if resumed else ctx.turn
        session_id = ctx.session_id or f"script-{ctx.run_id}"
        if ctx.session_id is None:
            yield AgentSession(
                session_id=session_id,
                provider=self.name,
                cli_version=self.version(),
                model=ctx.model,
                tools=["write", "edit", "bash"],
            )
        last = ""
        state = {"phase": phase, "steps": steps, "turn": origin}
        if not (resumed and ctx.resume_state.get("turn")):
            # Before any step: the marks' key is known to a resume from now on. (Not for a
            # resume that knows it: that would count as progress, see ``auto_resume``.)
            yield SessionUpdate(session_id, {**state, "step": start})
        for index in range(start, len(steps)):
            step = steps[index]
            if "fail" in step:
                # A failed run resumed later continues after the failing step, not into it again.
                yield SessionUpdate(session_id, {**state, "step": index + 1})
            async for item in self._step(ctx, index, step, f"{origin}_{index}"):
                if isinstance(item, AgentMessage):
                    last = item.text
                yield item
            yield SessionUpdate(session_id, {**state, "step": index + 1})
        # Every step done, and kept so until the turn is recorded as ended (the executor drops
        # ``phase`` then): a crash before that resumes into no steps, never into all of them.
        yield SessionUpdate(session_id, {**state, "step": len(steps)})
        yield TurnEnd("end_turn", last or None)

    async def _step(
        self, ctx: TurnContext, index: int, step: dict[str, Any], key: str
    ) -> AsyncIterator[AdapterItem]:
        kind = next(k for k in STEP_KINDS if k in step)
        value = step[kind]
        ident = f"{ctx.turn}_{index}"
        if kind == "say":
            yield AgentMessage(message_id=f"msg_{ident}", text=value)
        elif kind == "think":
            yield AgentThinking(text=value)
        elif kind == "sleep":
            await asyncio.sleep(float(value))
        elif kind == "usage":
            # Without ``cost_usd`` the executor prices the tokens (``model``, else the run's).
            cost = value.get("cost_usd")
            yield Usage(
                input_tokens=int(value.get("input_tokens", 0)),
                output_tokens=int(value.get("output_tokens", 0)),
                cache_read_tokens=int(value.get("cache_read_tokens", 0)),
                cache_write_tokens=int(value.get("cache_write_tokens", 0)),
                cost_usd=None if cost is None else float(cost),
                model=str(value["model"]) if value.get("model") else None,
            )
        elif kind == "tasks":
            tasks = [
                Task(content=str(t.get("content", "")), status=str(t.get("status", "pending")))
                if isinstance(t, dict)
                else Task(content=str(t), status="pending")
                for t in value
            ]
            yield TaskUpdated(tasks=tasks)
        elif kind == "ask":
            yield AgentMessage(message_id=f"msg_{ident}", text=value)
            answer = await ctx.ask_operator(value)
            yield AgentMessage(message_id=f"msg_{ident}_ack", text=f"Thanks: {answer}")
        elif kind == "fail":
            raise AgentFailure(value)
        else:
            async for item in self._tool(ctx, f"call_{ident}", kind, value, step, key):
                yield item

    async def _tool(
        self,
        ctx: TurnContext,
        call_id: str,
        kind: str,
        value: Any,
        step: dict[str, Any],
        key: str,
    ) -> AsyncIterator[AdapterItem]:
        tool_input = {"command": value} if kind == "bash" else dict(value)
        title = f"$ {value}" if kind == "bash" else f"{kind} {value['path']}"
        tool = {"bash": "Bash", "write": "Write", "edit": "Edit"}[kind]
        hints = {"deny": True} if step.get("deny") else {}
        request = ToolRequest(call_id, tool, "bash" if kind == "bash" else kind, tool_input, hints)  # type: ignore[arg-type]
        yield ToolCall(call_id=call_id, tool=tool, kind=request.kind, title=title, input=tool_input)
        marks = step_marks(ctx.worktree) if kind == "bash" else None
        mark = marks / key if marks is not None else None
        done = await asyncio.to_thread(_finished, mark)
        if done is not None:  # it ran to its end before the server died: not again
            yield tool_result(
                call_id,
                ok=done == 0,
                output=PROMPTS_RAN_BEFORE,
                error=None if done == 0 else f"exit code {done}",
                exit_code=done,
            )
            return
        decision = await ctx.decide(request)
        started = time.monotonic()
        if not decision.allow:
            yield tool_result(
                call_id, ok=False, error=f"Denied: {decision.reason or 'not allowed'}"
            )
            return
        if kind == "bash":
            timeout = float(step.get("timeout", ctx.bash_timeout))
            code, output, timed_out = await _run_bash(
                value, ctx.worktree, timeout, ctx.options.get("env"), ctx.sandbox, mark
            )
            crashpoints.reached("script:step-done")
            yield RawOutput(f"$ {value}\n{output}")
            error = (
                f"timed out after {timeout:g}s"
                if timed_out
                else (None if code == 0 else f"exit code {code}")
            )
            ok, exit_code = code == 0, code
        else:
            exit_code = None
            try:
                change = self._apply_file_step(ctx.worktree, kind, value)
            except (ValueError, OSError) as exc:
                ok, error, output = False, str(exc), ""
            else:
                ok, error, output = True, None, f"{change} {value['path']}"
        yield tool_result(
            call_id,
            ok=ok,
            output=output,
            error=error,
            exit_code=exit_code,
            duration_ms=int((time.monotonic() - started) * 1000),
        )

    @staticmethod
    def _apply_file_step(worktree: Path, kind: str, value: dict[str, Any]) -> str:
        target = _resolve_inside(worktree, value["path"])
        if kind == "write":
            change = "modified" if target.exists() else "added"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(value["content"])
            return change
        text = target.read_text()
        if value["old"] not in text:
            raise ValueError(f"text to replace not found in {value['path']}")
        target.write_text(text.replace(value["old"], value["new"], 1))
        return "modified"
