"""The channel registry: every notification sink registers here, built-ins included.

A channel is an object with a ``kind``, a ``config`` validator (for channels a user adds:
URLs and secrets) and an async ``deliver``. It reports an :class:`Outcome`; the worker owns
retries (only when ``retry`` is set: 429 and 5xx), pruning (``prune``: the endpoint is gone,
404/410) and the delivery log. An outside package adds a channel with :func:`register`, exactly
as :mod:`codeyard.notifications.builtin` does for web push, webhooks, Slack, Discord and devices.
"""

from __future__ import annotations

from codeyard.notifications.channels.base import (
    Channel,
    Delivery,
    Outcome,
    http_outcome,
)

_REGISTRY: dict[str, Channel] = {}

__all__ = ["Channel", "Delivery", "Outcome", "get", "http_outcome", "kinds", "register"]


def register(channel: Channel) -> None:
    """Add (or replace) the channel for ``channel.kind``."""
    _REGISTRY[channel.kind] = channel


def get(kind: str) -> Channel | None:
    return _REGISTRY.get(kind)


def kinds(*, user_configurable: bool | None = None) -> list[str]:
    return sorted(
        k
        for k, c in _REGISTRY.items()
        if user_configurable is None or c.user_configurable == user_configurable
    )
