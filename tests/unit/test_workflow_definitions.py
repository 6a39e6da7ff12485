"""Workflow definitions, templates, conditions and the resolved graph (issue 20): pure, no I/O."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from codeyard.auth.principal import Principal
from codeyard.domain.errors import Forbidden, ValidationFailed
from codeyard.services import workflow_executions as workflow_service
from codeyard.workflows import expressions as ex
from codeyard.workflows import graph, model
from codeyard.workflows.state import fold, step_view


def defn(*steps: dict[str, Any], **extra: Any) -> model.WorkflowDefinition:
    return model.load({"name": "t", "steps": list(steps), **extra})


def run(sid: str, **kw: Any) -> dict[str, Any]:
    return {"id": sid, "type": "run", "provider": "script", "prompt": "p", **kw}


def test_yaml_with_a_syntax_error_names_the_line() -> None:
    with pytest.raises(ValidationFailed) as err:
        model.parse_text("name: x\nsteps:\n  - id: a\n   type: run\n")
    assert "line 4" in err.value.detail


def test_every_invalid_field_is_listed_with_its_location() -> None:
    with pytest.raises(ValidationFailed) as err:
        model.load({"name": "t", "steps": [{"id": "a", "type": "teleport"}, {"type": "run"}]})
    locs = [e["loc"] for e in err.value.extra["errors"]]
    assert ["definition", "steps", 0] in [loc[:3] for loc in locs]
    assert any(loc[:3] == ["definition", "steps", 1] for loc in locs)


def test_published_schema_accepts_a_real_definition_and_rejects_a_bad_one() -> None:
    schema = model.json_schema()
    good = {
        "name": "t",
        "steps": [run("a"), {"id": "s", "type": "shell", "in": "a", "command": "ls"}],
    }
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "t", "steps": [{"id": "s", "type": "shell"}]}, schema)


def test_graph_adds_what_steps_read_and_orders_waves() -> None:
    g = graph.resolve(
        defn(
            run("a"),
            run("b", prompt="${steps.a.message}"),
            {"id": "x", "type": "extract", "source": "${steps.b.message}", "regex": "(\\d+)"},
            {"id": "c", "type": "if", "condition": "vars.x == '1'", "then": ["d"]},
            {"id": "d", "type": "shell", "in": "a", "command": "true"},
            {"id": "p", "type": "parallel", "steps": [run("p1", prompt="${inputs.q}")]},
        )
    )
    assert g.deps == {"a": [], "b": ["a"], "x": ["b"], "c": ["x"], "d": ["a", "c"], "p": []}
    assert g.waves == [["a", "p"], ["b"], ["x"], ["c"], ["d"]]
    assert g.branch_of == {"d": ("c", "then")}


def test_graph_refuses_cycles_unknown_names_and_wrong_kinds() -> None:
    with pytest.raises(ValidationFailed, match="cycle"):
        graph.resolve(defn(run("a", depends_on=["b"]), run("b", prompt="${steps.a.x}")))
    with pytest.raises(ValidationFailed) as err:
        graph.resolve(
            defn(
                run("a"),
                {"id": "s", "type": "shell", "in": "nope", "command": "ls"},
                {"id": "t", "type": "shell", "in": "s", "command": "ls"},
                {"id": "e", "type": "extract", "source": "x", "regex": "(", "jsonpath": "$"},
                {"id": "u", "type": "if", "condition": "vars.missing"},
                run("v", worktree="shared"),
            )
        )
    msgs = " | ".join(e["msg"] for e in err.value.extra["errors"])
    assert "'nope', which does not exist" in msgs
    assert "'in' must name a run step; 's' is a shell" in msgs
    assert "exactly one of 'regex', 'jsonpath' or 'schema'" in msgs
    assert "vars.missing, which no extract step makes" in msgs
    assert "worktree 'shared' needs 'from'" in msgs


def test_parallel_children_cannot_wait_for_each_other() -> None:
    with pytest.raises(ValidationFailed, match="cannot wait for each other"):
        graph.resolve(
            defn({"id": "p", "type": "parallel", "steps": [run("a"), run("b", depends_on=["a"])]})
        )


def test_inputs_defaults_required_and_types() -> None:
    d = defn(
        run("a"),
        inputs={
            "n": {"type": "integer", "default": 3},
            "who": {"type": "string", "required": True},
        },
    )
    assert graph.check_inputs(d, {"who": "me"}) == {"n": 3, "who": "me"}
    with pytest.raises(ValidationFailed) as err:
        graph.check_inputs(d, {"n": True, "extra": 1})
    assert {e["loc"][-1]: e["msg"] for e in err.value.extra["errors"]} == {
        "extra": "not an input (inputs: n, who)",
        "n": "True is not of type 'integer' (send an integer)",
        "who": "required (send a string)",
    }


def test_templates_keep_types_and_name_what_is_missing() -> None:
    scope = {"inputs": {"xs": [1, 2]}, "steps": {"a": {"out": {"k": "v"}}}, "vars": {}}
    assert ex.render_value("${inputs.xs}", scope) == [1, 2]
    assert ex.render("n=${inputs.xs[1]} o=${steps.a.out}", scope) == 'n=2 o={"k": "v"}'
    with pytest.raises(ex.TemplateError, match="no 'b'"):
        ex.render("${steps.b.out}", scope)


def test_conditions_are_evaluated_without_eval() -> None:
    scope = {"inputs": {"n": 3}, "steps": {"a": {"exit_code": 0}}, "vars": {"v": "x"}}
    assert ex.evaluate("steps.a.exit_code == 0 and inputs.n > 2 and vars.v in ['x']", scope)
    for hostile in ("__import__('os').system('true')", "inputs.__class__", "open('/etc/passwd')"):
        with pytest.raises(ex.TemplateError):
            ex.evaluate(hostile, scope)


def test_extract_regex_group_and_jsonpath() -> None:
    assert ex.extract("took 12 ms", r"took (\d+) ms", None) == "12"
    assert ex.extract('{"a": [{"b": 1}, {"b": 2}]}', None, "$.a[*].b") == [1, 2]
    with pytest.raises(ex.TemplateError, match="matched nothing"):
        ex.extract("nothing", r"(\d+)", None)


def test_folded_log_knows_what_not_to_redo() -> None:
    events = [
        ("workflow.step.started", {"key": "a"}),
        ("workflow.step.run", {"key": "a", "run_id": "run_1", "turns_before": 0}),
        ("workflow.step.completed", {"key": "a", "output": {"run_id": "run_1"}}),
        ("workflow.approval.requested", {"key": "ok", "attempt": 0, "message": ""}),
        ("workflow.approval.decided", {"key": "ok", "attempt": 0, "approved": False}),
        ("workflow.approval.requested", {"key": "ok", "attempt": 1, "message": ""}),
        ("workflow.step.skipped", {"key": "z", "reason": "no"}),
    ]
    folded = fold(events)
    assert folded.done["a"] == {"run_id": "run_1"}
    assert folded.pending_approvals() == [("ok", 1)]
    assert folded.done["z"]["skipped"] is True
    view = {s["key"]: s["status"] for s in step_view(folded)}
    assert view == {"a": "completed", "ok": "waiting", "z": "skipped"}


def test_a_workflow_that_lands_needs_the_scopes_landing_needs() -> None:
    g = graph.resolve(
        defn(
            run("a"),
            run("b"),
            {"id": "pick", "type": "compare", "candidates": ["a", "b"], "land": "create_pr"},
        )
    )
    writer = Principal("token", "w", frozenset({"runs:read", "runs:write"}), "usr_1", "member")
    with pytest.raises(Forbidden) as err:
        workflow_service.check_scopes(g, writer)
    assert "git:merge, git:push" in err.value.detail
    merger = Principal("token", "m", frozenset({"runs:write", "git:merge", "git:push"}), "usr_2")
    workflow_service.check_scopes(g, merger)
    workflow_service.check_scopes(graph.resolve(defn(run("a"))), writer)
