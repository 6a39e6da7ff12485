"""The event contract: one model per type, the union is the list of types, every emitter uses
it, and mypy holds each emitter to its model."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

import codeyard
from codeyard.domain import events as ev
from codeyard.domain.events import (
    EVENT_MODELS,
    EVENT_TYPES,
    NewEvent,
    Unknown,
    parse_event,
    tool_result,
    validate_new,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "codeyard"


def _all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def test_every_event_model_is_a_member_of_the_union() -> None:
    """A model defined anywhere in the package but left out of ``KnownEvent`` would be
    emitted without ever being listed, documented or parsed back."""
    for module in pkgutil.walk_packages(codeyard.__path__, "codeyard."):
        if ".migrations" in module.name or module.name.startswith("codeyard.web"):
            continue
        importlib.import_module(module.name)
    models = _all_subclasses(NewEvent) - {Unknown}
    assert models, "no event models found"
    members = tuple(EVENT_MODELS.values())

    def listed(model: type) -> bool:
        # A marker subclass of a member (``agents.base.ModelRetrying`` is an ``error``) is
        # stored as that member's type, so it is listed through it.
        return model in members or (
            issubclass(model, members) and model.model_fields["type"].default in EVENT_MODELS
        )

    outside = sorted(m.__qualname__ for m in models if not listed(m))
    assert not outside, f"event models not in codeyard.domain.events.KnownEvent: {outside}"
    assert set(EVENT_MODELS) == EVENT_TYPES
    for type_, model in EVENT_MODELS.items():
        assert model.model_fields["type"].default == type_


def _string_emits() -> list[tuple[str, int, str]]:
    """``(file, line, type)`` of events emitted by name: ``emit_one(run, "type", {...})`` and
    ``validate_new("type", ...)`` (the runtime-checked form for code not on the models yet)."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            index = {"emit_one": 1, "validate_new": 0}.get(str(name))
            if index is None or len(node.args) <= index:
                continue
            arg = node.args[index]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((str(path.relative_to(ROOT)), node.lineno, arg.value))
    return found


def test_every_type_emitted_by_name_is_in_the_union() -> None:
    unknown = [f"{f}:{line} {t!r}" for f, line, t in _string_emits() if t not in EVENT_TYPES]
    assert not unknown, "events emitted with a type the union does not have: " + ", ".join(unknown)


def test_data_leaves_the_type_out_and_uses_wire_names() -> None:
    changed = ev.RunStatusChanged(from_="queued", to="preparing")
    assert changed.type == "run.status"
    assert changed.data == {"from": "queued", "to": "preparing", "reason": None}
    assert json.loads(changed.data_json) == changed.data
    assert parse_event("run.status", changed.data) == changed


def test_models_refuse_unknown_and_mistyped_fields() -> None:
    with pytest.raises(ValidationError, match="txt"):
        ev.AgentMessage.model_validate({"message_id": "m", "txt": "hi"})
    with pytest.raises(ValidationError, match="kind"):
        ev.ToolCall.model_validate(
            {"call_id": "c", "tool": "t", "kind": "shell", "title": "", "input": {}}
        )
    with pytest.raises(ValueError, match=r"Unknown event type 'agent\.shout'"):
        validate_new("agent.shout", {})
    with pytest.raises(ValidationError):
        validate_new("user.message", {"text": "hi"})  # no author


def test_stored_data_of_an_unknown_type_round_trips_unchanged() -> None:
    later = parse_event("future.thing", {"port": 5173, "url": "/p/5173/"})
    assert isinstance(later, Unknown) and later.type == "future.thing"
    assert json.loads(later.data_json) == {"port": 5173, "url": "/p/5173/"}


def test_tool_result_is_built_in_one_place_and_keeps_the_tail() -> None:
    long = "a" * 10 + "z" * ev.OUTPUT_LIMIT
    result = tool_result("call_1", ok=False, output=long, error=long, exit_code=2)
    assert result.output == "…" + "z" * ev.OUTPUT_LIMIT and result.error == result.output
    assert result.data == {
        "call_id": "call_1",
        "ok": False,
        "output": result.output,
        "error": result.error,
        "exit_code": 2,
        "duration_ms": 0,
    }
    # Every provider builds its results through it (no hand-made ``tool.result`` payloads).
    hand_made = [
        str(p.relative_to(ROOT))
        for p in PACKAGE.rglob("*.py")
        if p.name != "events.py" and "ToolResult(" in p.read_text()
    ]
    assert not hand_made, f"tool.result built outside tool_result(): {hand_made}"


def test_mypy_holds_an_emitter_to_its_model(tmp_path: Path) -> None:
    """The pydantic mypy plugin types each model's constructor (``init_typed``): a misspelt
    field or a wrong kind in a normalizer fails ``mypy``, not a browser later."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from codeyard.domain.events import AgentMessage, ToolCall\n"
        "AgentMessage(message_id='m', txt='hi')\n"
        "ToolCall(call_id='c', tool='t', kind='shell', title='', input={})\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "cache"),
            str(probe),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=170,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'Unexpected keyword argument "txt"' in done.stdout
    assert 'Argument "kind" to "ToolCall"' in done.stdout
