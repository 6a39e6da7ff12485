"""Permission requests from ACP agents, answered with the option of the decided kind."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from codeyard.agents.acp.wire import PermissionOption

#: The answer when no decision will come (the turn stops): the agent treats the call as refused.
CANCELLED: dict[str, Any] = {"outcome": {"outcome": "cancelled"}}


@dataclass(slots=True)
class Permission:
    """A request the agent waits on; the turn sets ``answer`` once the policy has decided."""

    params: Any
    answer: asyncio.Future[dict[str, Any]]


def pick(options: list[PermissionOption], allow: bool) -> dict[str, Any]:
    """The outcome selecting the option of the wanted kind (ids differ per agent)."""
    kinds = ("allow_once", "allow_always") if allow else ("reject_once", "reject_always")
    for kind in kinds:
        for option in options:
            if option.kind == kind:
                return {"outcome": {"outcome": "selected", "optionId": option.option_id}}
    return CANCELLED
