"""Retry policies, wait and extraction checks, attempt state and the schema-validated answers of
the utility-model steps (issue 20): pure, no I/O."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from codeyard.domain.errors import ValidationFailed
from codeyard.workflows import graph, judging, model
from codeyard.workflows.state import attempt_key, base_key, fold, step_view


def defn(*steps: dict[str, Any]) -> model.WorkflowDefinition:
    return model.load({"name": "t", "steps": list(steps)})


RUN = {"id": "impl", "type": "run", "provider": "script", "prompt": "p"}


def problems(*steps: dict[str, Any]) -> str:
    with pytest.raises(ValidationFailed) as err:
        graph.resolve(defn(RUN, *steps))
    return " | ".join(e["msg"] for e in err.value.extra["errors"])


def test_retry_backs_off_by_its_factor_up_to_its_cap() -> None:
    retry = model.Retry(max=5, backoff=2, factor=3, max_delay=20)
    assert [retry.delay(i) for i in range(4)] == [2, 6, 18, 20]
    assert model.Retry(max=1).on == list(model.RETRYABLE)
    with pytest.raises(ValidationError):
        model.Retry(max=1, on=["rejected"])  # type: ignore[list-item]
    with pytest.raises(ValidationError):
        model.Retry(max=0)


def test_retry_is_refused_on_groups_conditions_and_approvals() -> None:
    shell = {"id": "s", "type": "shell", "in": "impl", "command": "true"}
    msgs = problems(
        {"id": "g", "type": "parallel", "steps": [shell], "retry": {"max": 2}},
        {"id": "c", "type": "if", "condition": "True", "retry": {"max": 2}},
        {"id": "a", "type": "approval", "retry": {"max": 2}},
    )
    for kind in ("parallel", "if", "approval"):
        assert f"a {kind} step cannot retry: put 'retry' on its steps" in msgs
    ok = graph.resolve(defn(RUN, {**shell, "retry": {"max": 2}}))
    assert "s" in ok.steps


def test_wait_steps_say_what_they_watch() -> None:
    msgs = problems(
        {"id": "w1", "type": "wait", "event": "check.passed"},
        {"id": "w2", "type": "wait", "step": "impl", "event": "x", "check": "tests"},
        {"id": "w3", "type": "wait", "run": "${steps.impl.run_id}", "status": ["review"]},
        {"id": "w4", "type": "wait", "step": "impl", "since": "now"},
        {"id": "w5", "type": "wait", "step": "impl", "run": "run_1", "event": "x"},
    )
    assert "say whose log to watch" in msgs
    assert "give 'event' or 'check', not both" in msgs
    assert "'run' is for waiting on an 'event' or a 'check'" in msgs
    assert "'where' and 'since' apply to 'event' and 'check' waits" in msgs
    assert "give 'step' (a run step) or 'run' (a run id), not both" in msgs
    # A run named by a template is a dependency like any other reference.
    g = graph.resolve(
        defn(RUN, {"id": "w", "type": "wait", "run": "${steps.impl.run_id}", "event": "x"})
    )
    assert g.deps["w"] == ["impl"]


def test_extraction_schemas_are_checked_before_anything_runs() -> None:
    src = {"type": "extract", "source": "${steps.impl.message}"}
    msgs = problems(
        {**src, "id": "e1", "schema": {"type": "array"}},
        {**src, "id": "e2", "schema": {"type": "object", "properties": {"a": {"type": 5}}}},
        {**src, "id": "e3", "regex": "x", "schema": {"type": "object"}},
    )
    assert "schema: the top level must be {type: object}" in msgs
    assert "schema: not a valid JSON Schema" in msgs
    assert "exactly one of 'regex', 'jsonpath' or 'schema'" in msgs
    published = model.json_schema()
    good = {"name": "t", "steps": [RUN, {**src, "id": "e", "schema": {"type": "object"}}]}
    jsonschema.validate(good, published)


def test_attempts_are_folded_so_a_restart_continues_with_the_next_one() -> None:
    assert attempt_key("a", 0) == "a" and attempt_key("a", 2) == "a~2"
    assert base_key("fan/x[1]~2") == "fan/x[1]"
    folded = fold(
        [
            ("workflow.step.started", {"key": "a", "step": "a", "type": "shell"}),
            ("workflow.step.retry", {"key": "a", "attempt": 1, "not_before": 5.0}),
            ("workflow.step.retry", {"key": "a", "attempt": 2, "not_before": 9.5}),
            ("workflow.step.waiting", {"key": "w", "run_id": "r", "after": 7, "deadline": None}),
            ("workflow.step.started", {"key": "b", "step": "b", "type": "run"}),
            ("workflow.step.run", {"key": "b", "run_id": "run_1", "turns_before": 0}),
            ("workflow.step.retry", {"key": "b", "attempt": 1, "not_before": 1.0}),
            ("workflow.step.run", {"key": "b~1", "run_id": "run_2", "turns_before": 0}),
            ("workflow.step.waiting", {"key": "w~1", "run_id": "r", "after": 9}),
        ]
    )
    assert folded.attempts == {"a": 2, "b": 1} and folded.not_before["a"] == 9.5
    assert folded.waiting["w"]["after"] == 7
    view = {s["key"]: s for s in step_view(folded)}
    assert view["a"]["status"] == "retrying" and view["a"]["attempts"] == 3
    assert view["w"]["status"] == "waiting"
    assert view["b"]["run_id"] == "run_2" and view["b"]["attempts"] == 2
    assert folded.runs["b"]["run_id"] == "run_1"  # each attempt re-attaches to its own run
    assert "w~1" not in view and "b~1" not in view  # attempts are not steps of their own


def test_a_schema_answer_is_validated_by_the_json_schema_itself() -> None:
    schema = {
        "type": "object",
        "properties": {"version": {"type": "string"}, "fixes": {"type": "integer"}},
        "required": ["version", "fixes"],
    }
    answer = judging.schema_model(schema)
    assert answer.model_json_schema() == schema  # what the model is asked to fill
    assert answer.model_validate({"version": "1", "fixes": 2}).model_dump() == {
        "version": "1",
        "fixes": 2,
    }
    with pytest.raises(ValidationError, match="fixes: 'two' is not of type 'integer'"):
        answer.model_validate({"version": "1", "fixes": "two"})
    with pytest.raises(ValidationError, match="'fixes' is a required property"):
        answer.model_validate({"version": "1"})


def test_a_run_steps_first_record_is_its_run_and_a_resume_is_known() -> None:
    """Run steps write no ``step.started``: their ``step.run`` shows them running, and a
    resumed execution is flagged so a run created just before a crash is looked up."""
    folded = fold(
        [
            ("workflow.execution.started", {}),
            ("workflow.step.run", {"key": "r", "run_id": "run_1", "step": "r", "type": "run"}),
            ("workflow.step.run", {"key": "s~1", "run_id": "run_2", "step": "s", "type": "run"}),
        ]
    )
    assert folded.status == {"r": "running", "s": "running"} and not folded.resumed
    assert {v["key"]: v["status"] for v in step_view(folded)} == {"r": "running", "s": "running"}
    assert fold([("workflow.execution.resumed", {})]).resumed
    done = fold(
        [
            ("workflow.step.run", {"key": "r", "run_id": "run_1"}),
            ("workflow.step.completed", {"key": "r", "output": {"run_id": "run_1"}}),
        ]
    )
    assert done.status["r"] == "completed"
