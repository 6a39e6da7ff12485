"""Named plug-ins of one kind: the one registry shape behind every seam.

Agent providers (``codeyard.agents.registry``) and pull-request hosts (``codeyard.prs.registry``)
register here by name, the built-in ones exactly as an outside plug-in would: a provider
registers its instance, a host kind its factory. Registering a name again replaces the entry and
keeps its place, so registration order can be preference order (PR hosts).
"""

from __future__ import annotations

from typing import Generic, TypeVar

from codeyard.domain.errors import ValidationFailed

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name, in registration order (or sorted by name when ``sort`` is set)."""

    def __init__(self, kind: str, *, sort: bool = False) -> None:
        #: What an entry is called in messages ("provider").
        self.kind = kind
        self._sort = sort
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> None:
        self._entries[name] = entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._entries) if self._sort else list(self._entries)

    def entries(self) -> list[T]:
        return [self._entries[name] for name in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> T:
        """The entry, or a 422 naming the ones there are (``loc``: the kind)."""
        try:
            return self._entries[name]
        except KeyError:
            available = self.names()
            raise ValidationFailed(
                f"Unknown {self.kind} '{name}'. Available {self.kind}s: {', '.join(available)}.",
                errors=[{"loc": [self.kind], "msg": f"unknown {self.kind} '{name}'"}],
                available=available,
            ) from None
