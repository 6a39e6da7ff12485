"""The provider registry: built-in providers register here exactly as a plug-in would."""

from __future__ import annotations

from typing import Any

from codeyard.agents.base import Provider
from codeyard.domain.errors import ValidationFailed

_providers: dict[str, Provider] = {}


def register(provider: Provider) -> None:
    _providers[provider.name] = provider


def names() -> list[str]:
    return sorted(_providers)


def get(name: str) -> Provider:
    try:
        return _providers[name]
    except KeyError:
        raise ValidationFailed(
            f"Unknown provider '{name}'. Available providers: {', '.join(names())}.",
            errors=[{"loc": ["provider"], "msg": f"unknown provider '{name}'"}],
            available=names(),
        ) from None


def describe(provider: Provider) -> dict[str, Any]:
    problem = provider.problem()
    return {
        "name": provider.name,
        "available": problem is None,
        "version": provider.version(),
        "path": None,
        "capabilities": provider.capabilities.as_dict(),
        "problem": problem,
    }


def describe_all() -> list[dict[str, Any]]:
    return [describe(_providers[n]) for n in names()]
