"""Discovery actions without I/O: their shape, and reading them out of the agent's answer.

The agent ends its answer with a fenced JSON block ``{"actions": [...]}`` (its prompt says
so). The block is validated with pydantic; an answer without a valid block proposes nothing
and says why, so a person sees a malformed proposal rather than a silently empty list.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PROPOSED, ACCEPTED, REJECTED = "proposed", "accepted", "rejected"
MAX_ACTIONS = 8


class CreateTicket(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["create_ticket"]
    title: str = Field(min_length=1, max_length=300)
    body: str = Field(default="", max_length=20_000)
    kind: Literal["bug", "feature", "task", "chore"] = "task"
    priority: Literal["urgent", "high", "medium", "low", "none"] = "none"


class StartRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["start_run"]
    title: str = Field(default="", max_length=300)
    prompt: str = Field(min_length=1, max_length=50_000)


Action = Annotated[CreateTicket | StartRun, Field(discriminator="type")]


class Proposed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actions: list[Action] = Field(max_length=MAX_ACTIONS)


_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)```", re.DOTALL)
_ADAPTER = TypeAdapter(Proposed)


def read_actions(answer: str | None) -> tuple[list[Action], str | None]:
    """The actions of the answer's last fenced JSON block, and why there are none when the
    block is missing or does not fit (``None``: read fine)."""
    blocks = _FENCE.findall(answer or "")
    if not blocks:
        return [], "The agent's answer has no fenced JSON block of actions."
    try:
        proposed = _ADAPTER.validate_python(json.loads(blocks[-1]))
    except ValueError as exc:  # json.JSONDecodeError and pydantic's ValidationError
        reason = _short(exc) if isinstance(exc, ValidationError) else f"not JSON ({exc})"
        return [], f"The agent's proposed actions do not fit: {reason}"
    return list(proposed.actions), None


def _short(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" + (
        f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    )
