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


def test_a_lazy_entry_is_built_once_on_first_use_and_listed_before() -> None:
    built: list[str] = []

    def load() -> int:
        built.append("b")
        return 7

    reg: Registry[int] = Registry("widget", sort=True)
    reg.register_lazy("b", load)
    reg.register("a", 1)
    assert reg.names() == ["a", "b"] and "b" in reg and not reg.loaded("b") and built == []
    assert reg.get("b") == 7 and reg.get("b") == 7 and reg.entries() == [1, 7]
    assert built == ["b"] and reg.loaded("b")
    with pytest.raises(ValidationFailed, match="Available widgets: a, b"):
        reg.get("c")


def test_a_lazy_entrys_error_is_its_own_not_an_unknown_name() -> None:
    def broken() -> int:
        raise KeyError("inside the loader")

    reg: Registry[int] = Registry("widget")
    reg.register_lazy("x", broken)
    with pytest.raises(KeyError, match="inside the loader"):
        reg.get("x")
    assert not reg.loaded("x")  # tried again next time


def test_built_in_providers_are_registered_by_name_and_built_as_declared() -> None:
    from codeyard.agents import builtin

    if not set(builtin.BUILTIN) <= set(agents.names()):  # codeyard.app registers them
        builtin.register_all()
    for name in builtin.BUILTIN:
        assert agents.get(name).name == name  # each module builds the provider it is named for
    agents.register_lazy("mislabelled", "codeyard.agents.script:ScriptProvider")
    try:
        with pytest.raises(TypeError, match="builds the provider 'script', registered as"):
            agents.get("mislabelled")
    finally:
        agents.PROVIDERS.unregister("mislabelled")
