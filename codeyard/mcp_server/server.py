"""Codeyard's MCP server (official ``mcp`` SDK, 2.x ``MCPServer``): tools and resources.

Served over streamable HTTP at ``/mcp`` (``http.py``), and over stdio by ``codeyard mcp``,
which relays to that endpoint with the CLI's token. Each call is authenticated by the HTTP
layer; here the caller is read from the request and every tool checks its own scope.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from pydantic import Field

from codeyard import __version__
from codeyard.domain.errors import CodeyardError
from codeyard.mcp_server import models as m
from codeyard.mcp_server import tools
from codeyard.mcp_server.tools import Access

INSTRUCTIONS = (
    "Codeyard runs coding agents in isolated git worktrees under one policy. Start work with "
    "start_run, follow it with wait_run (pass back the returned cursor so a wait resumes after "
    "a reconnect), read results with get_run and get_diff. A run that needs approval waits "
    "for decide_approval. Sub-runs started by an agent inherit its policies and draw from its "
    "budget."
)

RunRef = Annotated[str, Field(description="Run id (run_…) or number.")]


def _access(ctx: Context) -> Access:
    request: Any = ctx.request_context.request
    state = getattr(request, "state", None)
    principal = getattr(state, "principal", None)
    if request is None or principal is None:
        raise ToolError("Not authenticated: call Codeyard's MCP endpoint with a bearer token.")
    return Access(request.app.state.services, principal, getattr(state, "agent_run_id", None))


@contextlib.contextmanager
def _errors(kind: type[Exception] = ToolError) -> Iterator[None]:
    """Codeyard's errors reach the caller as their sentence (the SDK hides other errors)."""
    try:
        yield
    except CodeyardError as exc:
        raise kind(f"{exc.title}: {exc.detail}") from None


def build() -> MCPServer:
    """A fresh server (one per app: its HTTP session manager runs once)."""
    server: MCPServer = MCPServer(
        "codeyard", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )

    @server.tool()
    async def start_run(
        ctx: Context,
        prompt: Annotated[str, Field(min_length=1, description="What the agent should do.")],
        provider: Annotated[
            str | None, Field(description="Agent provider, e.g. claude-code, codex.")
        ] = None,
        agent_id: Annotated[str | None, Field(description="Agent profile id (agt_…).")] = None,
        repo_path: Annotated[
            str | None, Field(description="Local git work tree (people only).")
        ] = None,
        project_id: Annotated[str | None, Field(description="Project id (people only).")] = None,
        workspace: Annotated[
            str | None,
            Field(
                description="Workspace id or name (people only): the run uses its project and "
                "defaults. A sub-run stays in its parent's workspace."
            ),
        ] = None,
        model: str | None = None,
        title: str | None = None,
        budget_usd: Annotated[
            float | None, Field(gt=0, description="Spending cap; a sub-run's is a slice.")
        ] = None,
        wait: Annotated[
            bool, Field(description="Wait (up to wait_timeout) until the run rests.")
        ] = False,
        wait_timeout: Annotated[float, Field(ge=0, le=tools.MAX_WAIT_SECONDS)] = 120.0,
    ) -> m.WaitResult:
        """Start a governed run. From an agent, this is a sub-run of the agent's own run: same
        repositories and policies, a slice of its budget, depth and fan-out limited."""
        a = _access(ctx)
        args = {
            "prompt": prompt,
            "provider": provider,
            "agent_id": agent_id,
            "model": model,
            "title": title,
            "budget_usd": budget_usd,
        }
        if a.agent_run_id is None:
            args |= {"repo_path": repo_path, "project_id": project_id, "workspace": workspace}
        with _errors():
            started = await tools.start_run(a, args)
            if wait:
                return await tools.wait_run(
                    a, started.run.id, "completed", started.cursor, wait_timeout
                )
        return m.WaitResult(
            run=started.run, reached=False, reason="started", cursor=started.cursor, events=[]
        )

    @server.tool()
    async def wait_run(
        ctx: Context,
        run: RunRef,
        until: Annotated[
            Literal["completed", "needs_approval", "any"],
            Field(
                description="completed: the run rests; needs_approval: also stop when an "
                "approval waits; any: stop at the next event."
            ),
        ] = "completed",
        cursor: Annotated[
            int, Field(ge=0, description="Event-log id from the previous call (0: start).")
        ] = 0,
        timeout: Annotated[float, Field(ge=0, le=tools.MAX_WAIT_SECONDS)] = 60.0,
    ) -> m.WaitResult:
        """Wait for a run, resuming from the event-log cursor of a previous call."""
        with _errors():
            return await tools.wait_run(_access(ctx), run, until, cursor, timeout)

    @server.tool()
    async def send_message(
        ctx: Context, run: RunRef, text: Annotated[str, Field(min_length=1)]
    ) -> m.RunBrief:
        """Send the agent of a run a message (answers a question, steers, or starts a turn)."""
        with _errors():
            return await tools.send_message(_access(ctx), run, text)

    @server.tool()
    async def get_run(ctx: Context, run: RunRef) -> m.RunBrief:
        """Status, cost, diff stats and pending approvals of a run."""
        with _errors():
            return await tools.get_run(_access(ctx), run)

    @server.tool()
    async def list_runs(
        ctx: Context,
        status: Annotated[str | None, Field(description="Comma-separated statuses.")] = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
        cursor: str | None = None,
        workspace: Annotated[
            str | None, Field(description="Only runs started in this workspace (id or name).")
        ] = None,
    ) -> m.RunList:
        """Runs, newest first (an agent sees its own run and its sub-runs)."""
        with _errors():
            return await tools.list_runs(_access(ctx), status, limit, cursor, workspace)

    @server.tool()
    async def get_diff(
        ctx: Context,
        run: RunRef,
        max_bytes: Annotated[int, Field(ge=1, le=2_000_000)] = 100_000,
    ) -> m.DiffResult:
        """The run's changes against its base: files, stats and the unified diff."""
        with _errors():
            return await tools.get_diff(_access(ctx), run, max_bytes)

    @server.tool()
    async def decide_approval(
        ctx: Context,
        approval_id: str,
        decision: Literal["approved", "rejected"],
        reason: str | None = None,
    ) -> m.ApprovalResult:
        """Answer a pending approval (needs approvals:resolve; an agent only its sub-runs')."""
        with _errors():
            return await tools.decide_approval(_access(ctx), approval_id, decision, reason)

    @server.tool()
    async def land_run(
        ctx: Context,
        run: RunRef,
        action: Literal["merge", "squash", "rebase", "create_pr", "discard"] = "merge",
        message: str | None = None,
        target_branch: str | None = None,
    ) -> m.RunBrief:
        """Land a run's work (git:merge; create_pr needs git:push). Not for agent tokens."""
        with _errors():
            return await tools.land_run(_access(ctx), run, action, message, target_branch)

    @server.resource(
        "codeyard://runs/{run}/transcript",
        name="transcript",
        description="A run's event log as text.",
        mime_type="text/plain",
    )
    async def transcript(run: str, ctx: Context) -> str:
        with _errors(ResourceError):
            return await tools.transcript_text(_access(ctx), run)

    @server.resource(
        "codeyard://runs/{run}/diff",
        name="diff",
        description="A run's unified diff against its base.",
        mime_type="text/x-diff",
    )
    async def diff(run: str, ctx: Context) -> str:
        with _errors(ResourceError):
            return await tools.diff_text(_access(ctx), run)

    return server
