"""Images on an operator message: only for providers that take them, only when the message
starts a new turn (a message queued mid-turn reaches the agent as text through its input
stream), stored before the message is queued."""

from __future__ import annotations

import asyncio
from typing import Any

from codeyard.agents import registry
from codeyard.attachments import images
from codeyard.domain.errors import Conflict, ValidationFailed
from codeyard.services.context import Services

NEW_TURN = frozenset({"review", "failed", "cancelled"})


async def attach(svc: Services, run: dict[str, Any], data_urls: list[str]) -> list[str]:
    """Stored image paths for the queued message ([] without images)."""
    if not data_urls:
        return []
    provider = registry.get(run["provider"])
    if not provider.capabilities.images:
        takers = [n for n in registry.names() if registry.get(n).capabilities.images]
        raise ValidationFailed(
            f"The {run['provider']} provider does not take images; send text only, or use a "
            f"provider that does ({', '.join(takers)}).",
            errors=[{"loc": ["body", "images"], "msg": f"not supported by {run['provider']}"}],
        )
    if run["status"] not in NEW_TURN:
        raise Conflict(
            f"Images start a new turn: send them when run {run['number']} is in review (it is "
            f"{run['status']}), or send the text alone now.",
            current_status=run["status"],
        )
    parsed = images.parse(data_urls)
    root = svc.settings.data_dir / "attachments"
    return await asyncio.to_thread(images.store, root, run["id"], parsed)
