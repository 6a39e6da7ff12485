"""What an event means to a person: the notification's kind, text, tag and actions. Pure.

Kinds (also the names of per-user preferences): ``approval`` (a tool call waits),
``budget`` (a budget stop waits), ``run.input`` (the agent asked a question and waits),
``run.finished`` (the turn ended: the run awaits review) and ``run.failed``.
``approval.resolved`` is not a preference: it replaces an approval alert that was already
shown (same tag / web push ``Topic``) so a phone never keeps a stale prompt.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("approval", "budget", "run.input", "run.finished", "run.failed")
TYPES = frozenset({"approval.requested", "approval.resolved", "run.status", "feedback.exhausted"})


@dataclass(frozen=True, slots=True)
class Notification:
    kind: str
    title: str
    body: str
    tag: str
    run_id: str
    #: Path in the web UI (made absolute with the public URL when sent).
    path: str
    approval_id: str | None = None
    #: A hard gate: answer only in the full app (no action buttons, no one-tap link).
    gate: bool = False
    urgent: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notification:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _clip(text: str, limit: int = 180) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def from_event(event_type: str, data: dict[str, Any], run: dict[str, Any]) -> Notification | None:
    """The notification an event calls for, or None."""
    number, title = run.get("number"), _clip(run.get("title") or "", 80)
    path = f"/runs/{run['id']}"
    if event_type == "approval.requested":
        approval = data.get("approval") or {}
        budget = approval.get("kind") == "budget"
        return Notification(
            kind="budget" if budget else "approval",
            title=(
                f"Run #{number} stopped at its budget"
                if budget
                else f"Run #{number} needs approval"
            ),
            body=_clip(f"{approval.get('tool', '')}: {approval.get('title', '')}".strip(": ")),
            tag=f"approval-{approval.get('id')}",
            run_id=run["id"],
            path=path,
            approval_id=approval.get("id"),
            gate=bool(data.get("gate")),
            urgent=True,
            extra={"run_title": title},
        )
    if event_type == "approval.resolved":
        decision = data.get("decision", "answered")
        return Notification(
            kind="approval.resolved",
            title=f"Run #{number}: {decision}",
            body=_clip(f"Answered by {data.get('decided_by') or 'someone'}: {title}"),
            tag=f"approval-{data.get('approval_id')}",
            run_id=run["id"],
            path=path,
            approval_id=data.get("approval_id"),
        )
    if event_type == "feedback.exhausted":  # a fix loop gave up (issue 21)
        return Notification(
            kind="run.attention",
            title=f"Run #{number} needs your attention",
            body=_clip(data.get("reason") or title),
            tag=f"run-{run['id']}",
            run_id=run["id"],
            path=path,
            urgent=True,
        )
    if event_type == "run.status":
        to = data.get("to")
        if to == "waiting" and data.get("reason") == "question":
            return Notification(
                kind="run.input",
                title=f"Run #{number} is asking you something",
                body=title,
                tag=f"run-{run['id']}",
                run_id=run["id"],
                path=path,
                urgent=True,
            )
        if to == "review":
            return Notification(
                kind="run.finished",
                title=f"Run #{number} is ready for review",
                body=title,
                tag=f"run-{run['id']}",
                run_id=run["id"],
                path=path,
            )
        if to == "failed":
            return Notification(
                kind="run.failed",
                title=f"Run #{number} failed",
                body=_clip(data.get("reason") or title),
                tag=f"run-{run['id']}",
                run_id=run["id"],
                path=path,
                urgent=True,
            )
    return None


def in_quiet_hours(local_hhmm: str, start: str | None, end: str | None) -> bool:
    """Whether ``local_hhmm`` falls in [start, end) (a range may wrap past midnight)."""
    if not start or not end or start == end:
        return False
    if start < end:
        return start <= local_hhmm < end
    return local_hhmm >= start or local_hhmm < end
