"""The provider registry: built-in providers register here exactly as a plug-in would.

A plug-in registers an instance (:func:`register`), or a ``"module:Class"`` to be imported and
built on first use (:func:`register_lazy`), which is how the built-ins register
(``codeyard.agents.builtin``): each provider's module imports its protocol stack, and a server
starting up needs none of them until a run or a listing asks (issue 15).
"""

from __future__ import annotations

import importlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from codeyard.domain.registry import Registry

if TYPE_CHECKING:  # the adapters' contract loads with the first provider or run (issue 15)
    from codeyard.agents.base import Provider

#: Providers by name (sorted in lists); the same registry shape as PR hosts'.
PROVIDERS: Registry[Provider] = Registry("provider", sort=True)
_PROBING = threading.Lock()


def register(provider: Provider) -> None:
    """Add a provider under its own ``name`` (a plug-in does exactly this)."""
    PROVIDERS.register(provider.name, provider)


def register_lazy(name: str, target: str) -> None:
    """Add the provider ``name``, built from ``target`` (``"package.module:Class"``, called
    without arguments) the first time it is needed; its ``name`` must be ``name``."""
    PROVIDERS.register_lazy(name, lambda: _build(name, target))


def _build(name: str, target: str) -> Provider:
    module, _, attribute = target.partition(":")
    provider: Provider = getattr(importlib.import_module(module), attribute)()
    if provider.name != name:
        raise TypeError(f"{target} builds the provider {provider.name!r}, registered as {name!r}")
    return provider


def names() -> list[str]:
    return PROVIDERS.names()


def get(name: str) -> Provider:
    """The provider, or a 422 naming the available ones."""
    return PROVIDERS.get(name)


def executable_path(provider: Provider) -> str | None:
    """Where the provider's program is, for providers with an optional ``path()`` method.

    ``path()`` is not part of :class:`Provider` so that providers written before it still fit;
    built-in agents (``script``) have none.
    """
    path = getattr(provider, "path", None)
    found = path() if callable(path) else None
    return None if found is None else str(found)


def describe(provider: Provider) -> dict[str, Any]:
    problem = provider.problem()
    return {
        "name": provider.name,
        "available": problem is None,
        "version": provider.version(),
        "path": executable_path(provider),
        "capabilities": provider.capabilities.as_dict(),
        "problem": problem,
    }


def describe_all() -> list[dict[str, Any]]:
    """Every provider described; their ``--version`` probes run side by side (blocking: call
    from a thread in async code)."""
    providers = PROVIDERS.entries()
    # One probe at a time (the API's listings, a worker's registration): the probes import
    # agent SDKs lazily, and two threads importing the same package can see it half-made.
    with _PROBING, ThreadPoolExecutor(max_workers=max(1, len(providers))) as pool:
        return list(pool.map(describe, providers))
