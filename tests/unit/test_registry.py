"""One registry shape for every seam (agent providers, pull-request hosts)."""

from __future__ import annotations

import pytest

from codeyard.agents import registry as agents
from codeyard.domain.errors import ValidationFailed
from codeyard.domain.registry import Registry
from codeyard.prs import registry as hosts


def test_order_replacement_and_the_unknown_name() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("b", 1)
    reg.register("a", 2)
    reg.register("b", 3)  # replaced, keeps its place
    assert reg.names() == ["b", "a"] and reg.entries() == [3, 2] and "a" in reg
    assert Registry[int]("widget", sort=True).names() == []
    with pytest.raises(ValidationFailed) as refused:
        reg.get("c")
    assert str(refused.value) == "Unknown widget 'c'. Available widgets: b, a."
    assert refused.value.extra["errors"] == [{"loc": ["widget"], "msg": "unknown widget 'c'"}]
    reg.unregister("b")
    assert reg.names() == ["a"]


def test_providers_and_pr_hosts_share_it() -> None:
    assert isinstance(agents.PROVIDERS, Registry) and isinstance(hosts.HOSTS, Registry)
    assert hosts.names()[:2] == ["github", "gh"]  # preference order: the REST API first
    with pytest.raises(ValidationFailed, match="Unknown provider 'nope'"):
        agents.get("nope")
