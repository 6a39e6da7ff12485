"""Named plug-ins of one kind: the one registry shape behind every seam.

Agent providers (``codeyard.agents.registry``) and pull-request hosts (``codeyard.prs.registry``)
register here by name, the built-in ones exactly as an outside plug-in would: a provider
registers its instance, a host kind its factory. Registering a name again replaces the entry and
keeps its place, so registration order can be preference order (PR hosts).

An entry may also be registered by name with a loader (:meth:`Registry.register_lazy`), built the
first time :meth:`~Registry.get` or :meth:`~Registry.entries` needs it: the built-in agent
providers import their protocol stacks that way, so a server starting up (issue 15) does not
import twelve providers it may never run. Listing the names does not load anything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from codeyard.domain.errors import ValidationFailed

__all__ = ["Registry"]

T = TypeVar("T")


@dataclass(frozen=True)
class _Deferred(Generic[T]):
    """An entry not built yet: its loader."""

    load: Callable[[], T]


class Registry(Generic[T]):
    """Entries by name, in registration order (or sorted by name when ``sort`` is set)."""

    def __init__(self, kind: str, *, sort: bool = False) -> None:
        #: What an entry is called in messages ("provider").
        self.kind = kind
        self._sort = sort
        self._entries: dict[str, T | _Deferred[T]] = {}
        # Loaders may run in threads (provider probes); one builds an entry, the others wait.
        self._loading = threading.RLock()

    def register(self, name: str, entry: T) -> None:
        self._entries[name] = entry

    def register_lazy(self, name: str, load: Callable[[], T]) -> None:
        """Register ``name`` now and build its entry with ``load()`` when first needed."""
        self._entries[name] = _Deferred(load)

    def loaded(self, name: str) -> bool:
        """Whether ``name``'s entry is built (a lazy one is not until first needed)."""
        return name in self._entries and not isinstance(self._entries[name], _Deferred)

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._entries) if self._sort else list(self._entries)

    def entries(self) -> list[T]:
        """Every entry, lazy ones built."""
        return [self._entry(name) for name in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> T:
        """The entry, or a 422 naming the ones there are (``loc``: the kind)."""
        if name not in self._entries:
            available = self.names()
            raise ValidationFailed(
                f"Unknown {self.kind} '{name}'. Available {self.kind}s: {', '.join(available)}.",
                errors=[{"loc": [self.kind], "msg": f"unknown {self.kind} '{name}'"}],
                available=available,
            )
        return self._entry(name)

    def _entry(self, name: str) -> T:
        """``name``'s (registered) entry, built now if it was registered lazily."""
        entry = self._entries[name]
        if not isinstance(entry, _Deferred):
            return entry
        with self._loading:
            current = self._entries[name]
            if isinstance(current, _Deferred):
                built = current.load()
                self._entries[name] = built
                return built
            return current
