"""Run events as a readable transcript: pure functions from event dicts to Rich ``Text``.

:class:`Transcript` keeps the little state a transcript needs (tool titles by call id, streamed
deltas not yet closed by a full message); it never prints. Unknown event types still show up,
dimmed, so a newer server never makes the CLI lose information.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from codeyard.cli.format import as_dict, cost, duration_ms, short_sha, status_style, tokens

#: Tool output lines shown under a result (the full output is in ``codeyard`` logs / the UI).
OUTPUT_TAIL_LINES = 4
MAX_LINE = 200
PATH_KEYS = ("path", "file_path", "filePath", "notebook_path")


def _line(text: Any, limit: int = MAX_LINE) -> str:
    """The first line of ``text``, cut to ``limit`` characters, with ``…`` when anything is cut."""
    value = str(text) if text is not None else ""
    lines = value.strip().splitlines() or [""]
    first = lines[0]
    cut = len(lines) > 1 or len(first) > limit
    return first[:limit] + ("…" if cut else "")


def tool_title(data: dict[str, Any]) -> str:
    """One line naming a tool call: ``$ pytest -q`` for shell commands, ``write path`` for files."""
    kind = data.get("kind")
    tool_input = as_dict(data.get("input"))
    if kind == "bash":
        command = tool_input.get("command", tool_input.get("cmd"))
        if isinstance(command, list):
            command = shlex.join(str(part) for part in command)
        if command:
            return "$ " + _line(command)
    path = next((tool_input[k] for k in PATH_KEYS if tool_input.get(k)), None)
    if kind in ("read", "edit", "write") and path:
        return f"{kind} {_line(path)}"
    if kind == "search" and (tool_input.get("pattern") or tool_input.get("query")):
        where = f" in {path}" if path else ""
        return f"search {_line(tool_input.get('pattern') or tool_input.get('query'))}{where}"
    if kind == "fetch" and tool_input.get("url"):
        return f"fetch {_line(tool_input['url'])}"
    return _line(data.get("title") or data.get("tool") or "tool")


def _output_tail(output: Any, style: str = "dim") -> list[Text]:
    lines = [ln for ln in str(output or "").rstrip().splitlines() if ln.strip()]
    shown = lines[-OUTPUT_TAIL_LINES:]
    result = [Text(f"    {_line(ln)}", style=style) for ln in shown]
    if len(lines) > len(shown):
        result.insert(0, Text(f"    … {len(lines) - len(shown)} more lines", style="dim"))
    return result


def _usage_summary(usage: dict[str, Any] | None, cost_usd: Any = None) -> str:
    parts: list[str] = []
    if usage:
        parts.append(
            f"{tokens(usage.get('input_tokens'))} in / {tokens(usage.get('output_tokens'))} out"
        )
        cached = (usage.get("cache_read_tokens") or 0) + (usage.get("cache_write_tokens") or 0)
        if cached:
            parts.append(f"{tokens(cached)} cached")
    money = cost_usd if cost_usd is not None else (usage or {}).get("cost_usd")
    if money is not None:
        parts.append(cost(money))
    return " · ".join(parts)


class Transcript:
    """Turns events into renderables, one event at a time (``None`` for events not shown)."""

    def __init__(self) -> None:
        self._titles: dict[str, str] = {}
        self._last_call: str | None = None
        self._deltas: dict[str, list[str]] = {}
        #: The last tool result's output, so a ``file.changed`` that says the same is not
        #: printed twice ("added README.md" from the tool, then from the change tracker).
        self._last_output = ""

    def render(self, event: dict[str, Any]) -> RenderableType | None:
        kind = str(event.get("type", ""))
        data = as_dict(event.get("data"))
        if kind == "agent.delta":
            self._deltas.setdefault(str(data.get("message_id")), []).append(str(data.get("text")))
            return None
        if kind == "agent.message":
            self._deltas.pop(str(data.get("message_id")), None)
            return self._with_pending(_agent_message(str(data.get("text") or "")))
        if kind == "tool.call":
            self._last_call = str(data.get("call_id"))
            self._titles[self._last_call] = tool_title(data)
            return _tool_call(data)
        if kind == "tool.result":
            call_id = str(data.get("call_id"))
            title = self._titles.pop(call_id, None)
            self._last_output = str(data.get("output") or "").strip()
            # Right after its call the title would only repeat the line above.
            return _tool_result(data, None if call_id == self._last_call else title)
        if kind == "file.changed":
            said = f"{data.get('change') or 'modified'} {data.get('path', '?')}"
            if said in self._last_output.splitlines():
                return None
        handler = _HANDLERS.get(kind)
        if handler is None:
            return self._with_pending(_unknown(kind, data))
        rendered = handler(data)
        if kind in ("turn.completed", "run.status", "error"):
            return self._with_pending(rendered)
        return rendered

    def flush(self) -> RenderableType | None:
        """Text streamed as deltas whose full message never came (an interrupted turn)."""
        if not self._deltas:
            return None
        pending = [_agent_message("".join(parts), partial=True) for parts in self._deltas.values()]
        self._deltas.clear()
        return Group(*pending)

    def _with_pending(self, rendered: RenderableType | None) -> RenderableType | None:
        pending = self.flush()
        if pending is None:
            return rendered
        return Group(pending, rendered) if rendered is not None else pending


def _agent_message(text: str, *, partial: bool = False) -> Text:
    out = Text("● ", style="bold cyan")
    out.append(text.strip())
    if partial:
        out.append(" (incomplete)", style="dim")
    return out


def _run_created(data: dict[str, Any]) -> Text:
    run = as_dict(data.get("run"))
    out = Text(f"Run #{run.get('number', '?')} created", style="bold")
    details = [str(v) for v in (run.get("provider"), run.get("model"), run.get("branch")) if v]
    if details:
        out.append(" · " + " · ".join(details), style="dim")
    return out


def _run_status(data: dict[str, Any]) -> Text:
    to = str(data.get("to") or "?")
    out = Text("◆ status ", style="dim")
    if data.get("from"):
        out.append(f"{data['from']} → ", style="dim")
    out.append(to, style=status_style(to))
    if data.get("reason"):
        out.append(f" ({_line(data['reason'])})", style="dim")
    return out


def _turn_started(data: dict[str, Any]) -> Text:
    out = Text(f"▶ turn {data.get('turn', '?')}", style="bold")
    if data.get("source") and data.get("source") != "create":
        out.append(f" ({data['source']})", style="dim")
    return out


def _turn_completed(data: dict[str, Any]) -> Text:
    out = Text(f"■ turn {data.get('turn', '?')} finished", style="bold")
    parts = [str(data["stop_reason"])] if data.get("stop_reason") else []
    if data.get("duration_ms") is not None:
        parts.append(duration_ms(data["duration_ms"]))
    usage = _usage_summary(data.get("usage"), data.get("cost_usd"))
    if usage:
        parts.append(usage)
    if parts:
        out.append(" · " + " · ".join(parts), style="dim")
    return out


def _session(data: dict[str, Any]) -> Text:
    parts = [str(data[k]) for k in ("provider", "cli_version", "model") if data.get(k)]
    return Text("session " + " · ".join(parts), style="dim")


def _thinking(data: dict[str, Any]) -> Text:
    return Text("✻ " + str(data.get("text") or "").strip(), style="dim italic")


def _tool_call(data: dict[str, Any]) -> Text:
    out = Text("→ ", style="bold blue")
    out.append(tool_title(data), style="blue")
    return out


def _tool_result(data: dict[str, Any], title: str | None) -> Group:
    ok = bool(data.get("ok"))
    head = Text("  ✓ " if ok else "  ✗ ", style="green" if ok else "bold red")
    head.append("ok" if ok else "failed", style="green" if ok else "red")
    details = [str(title)] if title else []
    if data.get("exit_code") is not None:
        details.append(f"exit {data['exit_code']}")
    if data.get("duration_ms") is not None:
        details.append(duration_ms(data["duration_ms"]))
    if details:
        head.append(" · " + " · ".join(details), style="dim")
    lines = [head, *_output_tail(data.get("output"))]
    error = data.get("error")
    if not ok and error and error != f"exit code {data.get('exit_code')}":
        lines.extend(_output_tail(error, style="red"))
    return Group(*lines)


def _file_changed(data: dict[str, Any]) -> Text:
    change = str(data.get("change") or "modified")
    mark = {"added": "+", "deleted": "-"}.get(change, "~")
    return Text(f"  {mark} {change} {data.get('path', '?')}", style="dim")


def _tasks(data: dict[str, Any]) -> Group:
    marks = {"completed": ("✓", "green"), "in_progress": ("▸", "yellow")}
    lines = [Text("☰ tasks", style="bold")]
    for task in data.get("tasks") or []:
        content = task.get("content") if isinstance(task, dict) else task
        status = task.get("status") if isinstance(task, dict) else "pending"
        mark, style = marks.get(str(status), ("○", "dim"))
        lines.append(Text.assemble("  ", (mark, style), " ", _line(content)))
    return Group(*lines)


def _approval_requested(data: dict[str, Any]) -> Text:
    approval = as_dict(data.get("approval"))
    what = approval.get("title") or approval.get("tool") or approval.get("kind") or "a tool call"
    out = Text("⏸ approval needed: ", style="bold yellow")
    out.append(_line(what), style="yellow")
    if approval.get("id"):
        out.append(f"  → codeyard approve {approval['id']}  (or reject)", style="dim")
    return out


def _approval_resolved(data: dict[str, Any]) -> Text:
    decision = str(data.get("decision") or "resolved")
    out = Text(f"  approval {decision}", style="green" if decision == "approved" else "red")
    if data.get("decided_by"):
        out.append(f" by {data['decided_by']}", style="dim")
    if data.get("reason"):
        out.append(f" ({_line(data['reason'])})", style="dim")
    return out


def _policy_decision(data: dict[str, Any]) -> Text | None:
    if data.get("decision") != "deny":
        return None
    rule = data.get("rule")
    if isinstance(rule, dict):
        rule = rule.get("reason") or rule.get("name") or rule.get("id")
    out = Text(f"  ⛔ policy denied {data.get('tool', 'a tool call')}", style="red")
    if rule:
        out.append(f" ({_line(rule)})", style="dim")
    return out


def _user_message(data: dict[str, Any]) -> Text:
    out = Text(f"» {data.get('author') or 'you'}: ", style="bold magenta")
    out.append(str(data.get("text") or "").strip())
    return out


def _usage(data: dict[str, Any]) -> None:
    return None  # per-update usage is summed up at turn end (``turn.completed``)


def _log(data: dict[str, Any]) -> None:
    return None  # raw agent output: ``GET /api/runs/{id}/logs``


def _checkpoint(data: dict[str, Any]) -> Text:
    checkpoint = as_dict(data.get("checkpoint"))
    out = Text(f"⚑ checkpoint {checkpoint.get('id', '')}".rstrip(), style="dim")
    if checkpoint.get("description"):
        out.append(f" {_line(checkpoint['description'])}", style="dim")
    return out


def _git(data: dict[str, Any], action: str) -> Text:
    out = Text(f"⎇ {action}", style="bold green")
    if action == "merged" and data.get("target"):
        out.append(f" into {data['target']}")
        if data.get("strategy"):
            out.append(f" ({data['strategy']})", style="dim")
    if action == "pushed" and data.get("branch"):
        out.append(f" {data['branch']} → {data.get('remote') or 'origin'}")
    if data.get("sha"):
        out.append(f" {short_sha(data['sha'])}", style="dim")
    if data.get("message"):
        out.append(f" {_line(data['message'])}")
    return out


def _pr_created(data: dict[str, Any]) -> Text:
    number = f" #{data['number']}" if data.get("number") is not None else ""
    return Text(f"⎇ pull request{number} {data.get('url', '')}".rstrip(), style="bold green")


def _error(data: dict[str, Any]) -> Group:
    lines = [Text(f"✗ error: {str(data.get('message') or 'unknown error').strip()}", "bold red")]
    if data.get("detail"):
        detail = data["detail"]
        text = detail if isinstance(detail, str) else json.dumps(detail, default=str)
        lines.extend(_output_tail(text, style="red"))
    return Group(*lines)


def _unknown(kind: str, data: dict[str, Any]) -> Text:
    return Text(f"{kind} {_line(json.dumps(data, default=str))}", style="dim")


_HANDLERS: dict[str, Callable[[dict[str, Any]], RenderableType | None]] = {
    "run.created": _run_created,
    "run.status": _run_status,
    "turn.started": _turn_started,
    "turn.completed": _turn_completed,
    "agent.session": _session,
    "agent.thinking": _thinking,
    "file.changed": _file_changed,
    "task.updated": _tasks,
    "usage": _usage,
    "approval.requested": _approval_requested,
    "approval.resolved": _approval_resolved,
    "policy.decision": _policy_decision,
    "user.message": _user_message,
    "checkpoint.created": _checkpoint,
    "git.committed": lambda d: _git(d, "committed"),
    "git.merged": lambda d: _git(d, "merged"),
    "git.pushed": lambda d: _git(d, "pushed"),
    "pr.created": _pr_created,
    "error": _error,
    "log": _log,
}
