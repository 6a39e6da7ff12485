"""Typed workflow inputs and outputs (issue 20): the pure checks, through the jsonschema library."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from codeyard.domain.errors import ValidationFailed
from codeyard.workflows import graph, model, params


def defn(**extra: Any) -> model.WorkflowDefinition:
    steps = [{"id": "a", "type": "run", "provider": "script", "prompt": "p"}]
    return model.load({"name": "t", "steps": steps, **extra})


TYPED = {
    "task": {"type": "string", "required": True, "minLength": 3},
    "count": {"type": "integer", "default": 2, "minimum": 1, "maximum": 5},
    "ratio": {"type": "number"},
    "dry": {"type": "boolean", "default": False},
    "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
    "meta": {"type": "object", "requiredProperties": ["owner"]},
}


def test_inputs_get_defaults_and_keep_their_values() -> None:
    got = params.check_inputs(defn(inputs=TYPED), {"task": "fix it", "ratio": 1, "tags": ["x"]})
    assert got == {
        "task": "fix it",
        "count": 2,
        "ratio": 1,
        "dry": False,
        "mode": "fast",
        "tags": ["x"],
        "meta": None,
    }


@pytest.mark.parametrize(
    ("given", "name", "fragment"),
    [
        ({}, "task", "required (send a string)"),
        ({"task": 5}, "task", "5 is not of type 'string' (send a string)"),
        ({"task": "ab"}, "task", "is too short"),
        ({"task": "abc", "count": True}, "count", "(send an integer)"),
        ({"task": "abc", "count": 2.5}, "count", "is not of type 'integer'"),
        ({"task": "abc", "count": 9}, "count", "greater than the maximum of 5"),
        ({"task": "abc", "ratio": "1"}, "ratio", "(send a number)"),
        ({"task": "abc", "mode": "medium"}, "mode", 'send one of "fast", "slow"'),
        ({"task": "abc", "tags": ["x", 1]}, "tags", "[1]: 1 is not of type 'string'"),
        ({"task": "abc", "tags": ["a", "b", "c"]}, "tags", "is too long"),
        ({"task": "abc", "meta": {}}, "meta", "'owner' is a required property"),
        ({"task": "abc", "nope": 1}, "nope", "not an input (inputs: count, dry, meta"),
    ],
)
def test_a_wrong_input_is_named_with_the_fix(
    given: dict[str, Any], name: str, fragment: str
) -> None:
    with pytest.raises(ValidationFailed) as err:
        params.check_inputs(defn(inputs=TYPED), given)
    errors = err.value.extra["errors"]
    assert [e["loc"] for e in errors] == [["body", "variables", name]]
    assert fragment in errors[0]["msg"] and f"{name}: " in err.value.detail


def test_a_default_of_the_wrong_type_or_a_bad_constraint_is_a_static_error() -> None:
    with pytest.raises(ValidationFailed) as err:
        graph.resolve(defn(inputs={"n": {"type": "integer", "default": "two"}}))
    assert err.value.extra["errors"][0]["loc"] == ["definition", "inputs", "n", "default"]
    assert "'two' is not of type 'integer'" in err.value.detail
    with pytest.raises(ValidationFailed) as err:
        graph.resolve(defn(inputs={"s": {"type": "string", "pattern": "("}}))
    assert "not a valid JSON Schema" in err.value.detail
    with pytest.raises(ValidationFailed) as err:
        graph.resolve(defn(outputs={"o": {"value": "x", "type": "array", "items": {"type": 3}}}))
    assert err.value.extra["errors"][0]["loc"] == ["definition", "outputs", "o"]
    for items in ({"$ref": "http://127.0.0.1:9/x"}, {"anyOf": [{"$dynamicRef": "#x"}]}):
        with pytest.raises(ValidationFailed, match="is not supported: write the schema out"):
            graph.resolve(defn(inputs={"a": {"type": "array", "items": items}}))


def test_outputs_are_rendered_coerced_from_text_and_checked() -> None:
    d = defn(
        outputs={
            "plain": "run ${steps.a.run_id}",
            "count": {"value": "${vars.n}", "type": "integer", "minimum": 0},
            "files": {"value": "${steps.a.files}", "type": "array"},
            "ok": {"value": "${steps.a.ok}", "type": "boolean"},
            "label": {"value": "${vars.n}", "type": "string"},
        }
    )
    scope = {"steps": {"a": {"run_id": "r1", "files": ["x.py"], "ok": "true"}}, "vars": {"n": "7"}}
    assert params.render_outputs(d, scope) == {
        "plain": "run r1",
        "count": 7,
        "files": ["x.py"],
        "ok": True,
        "label": "7",
    }
    scope["vars"]["n"] = "seven"
    with pytest.raises(params.OutputMismatch) as err:
        params.render_outputs(d, scope)
    assert str(err.value) == "output 'count' (integer) is wrong: 'seven' is not of type 'integer'"
    scope["vars"]["n"] = "-1"
    with pytest.raises(params.OutputMismatch, match=r"output 'count'.*less than the minimum of 0"):
        params.render_outputs(d, scope)


def test_the_published_schema_describes_typed_inputs_and_outputs() -> None:
    schema = model.json_schema()
    doc = {
        "name": "t",
        "inputs": {"n": {"type": "integer", "minimum": 1}},
        "outputs": {"a": "${inputs.n}", "b": {"value": "${inputs.n}", "type": "integer"}},
        "steps": [{"id": "a", "type": "run", "provider": "script", "prompt": "p"}],
    }
    jsonschema.validate(doc, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "outputs": {"b": {"type": "integer"}}}, schema)
    rows = params.describe(model.load(doc))
    assert rows["inputs"][0]["constraints"] == {"minimum": 1}
    assert [(o["name"], o["type"]) for o in rows["outputs"]] == [("a", None), ("b", "integer")]
