"""Typed inputs and outputs: each declared type (plus its JSON Schema constraints) is compiled to
a JSON Schema and checked with the ``jsonschema`` library, so the definition's static check, the
``execute`` request and the end of an execution all apply the same rules.

Inputs are checked before anything is written (422 naming the input and what to send); outputs
are rendered from their templates once every step has ended and checked against their types (a
mismatch fails the execution with a reason naming the output). A template that is not exactly one
reference renders to text, so a non-string output whose text parses as JSON (``"42"``, ``"true"``,
``"[1, 2]"``) is taken as that JSON value before it is checked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from codeyard.domain.errors import ValidationFailed
from codeyard.workflows import expressions as ex
from codeyard.workflows.model import InputSpec, OutputSpec, WorkflowDefinition

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator


class OutputMismatch(Exception):
    """An output's rendered value does not have its declared type (the execution fails)."""


def schema_of(spec: InputSpec | OutputSpec) -> dict[str, Any]:
    """The JSON Schema one input or output stands for."""
    schema: dict[str, Any] = {}
    if spec.type is not None:
        schema["type"] = spec.type
    schema.update(spec.constraints())
    return schema


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    # Imported here: jsonschema costs ~35 ms of the server's start-up CPU (issue 15).
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema)


def problem(spec: InputSpec | OutputSpec, value: Any) -> str | None:
    """What is wrong with ``value`` for this spec (the most relevant error), or None."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator(schema_of(spec)).iter_errors(value))
    if error is None:
        return None
    where = "".join(f"[{p!r}]" for p in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def _fix(spec: InputSpec) -> str:
    hint = f"send {'an' if spec.type in ('integer', 'object', 'array') else 'a'} {spec.type}"
    if spec.enum is not None:
        hint = "send one of " + ", ".join(json.dumps(v) for v in spec.enum)
    return hint


def _references(schema: Any) -> str | None:
    """The first ``$``-keyword (``$ref``, ``$dynamicRef``, ``$id`` …) in a schema, or None: a
    reference could name a remote document or nothing, and would fail only at execute time."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if isinstance(key, str) and key.startswith("$") and key != "$comment":
                return key
            found = _references(value)
            if found is not None:
                return found
    elif isinstance(schema, list):
        for value in schema:
            found = _references(value)
            if found is not None:
                return found
    return None


def check_definition(defn: WorkflowDefinition) -> list[dict[str, Any]]:
    """Static problems of the declared inputs and outputs: a constraint that is not valid JSON
    Schema, a default that does not have its input's type, an output naming no step."""
    from jsonschema import Draft202012Validator, SchemaError

    errors: list[dict[str, Any]] = []
    specs: list[tuple[str, str, InputSpec | OutputSpec]] = [
        ("inputs", n, s) for n, s in defn.inputs.items()
    ]
    specs += [("outputs", n, s) for n, s in defn.outputs.items() if isinstance(s, OutputSpec)]
    for section, name, spec in specs:
        loc = ["definition", section, name]
        ref = _references(schema_of(spec))
        if ref is not None:
            msg = f"'{ref}' is not supported: write the schema out in place (no references)"
            errors.append({"loc": loc, "msg": msg})
            continue
        try:
            Draft202012Validator.check_schema(schema_of(spec))
        except SchemaError as exc:
            errors.append({"loc": loc, "msg": f"not a valid JSON Schema: {exc.message}"})
            continue
        if isinstance(spec, InputSpec) and spec.default is not None:
            wrong = problem(spec, spec.default)
            if wrong is not None:
                errors.append({"loc": [*loc, "default"], "msg": f"the default is wrong: {wrong}"})
    return errors


def check_inputs(defn: WorkflowDefinition, given: Mapping[str, Any]) -> dict[str, Any]:
    """The execution's inputs: defaults filled in; 422 naming each missing, unknown or mistyped
    input and what to send instead."""
    errors: list[dict[str, Any]] = []
    out: dict[str, Any] = {}
    for name in given:
        if name not in defn.inputs:
            known = ", ".join(sorted(defn.inputs)) or "none"
            errors.append(
                {"loc": ["body", "variables", name], "msg": f"not an input (inputs: {known})"}
            )
    for name, spec in defn.inputs.items():
        loc = ["body", "variables", name]
        if name in given:
            wrong = problem(spec, given[name])
            if wrong is not None:
                errors.append({"loc": loc, "msg": f"{wrong} ({_fix(spec)})"})
            out[name] = given[name]
        elif spec.required:
            errors.append({"loc": loc, "msg": f"required ({_fix(spec)})"})
        else:
            out[name] = spec.default
    if errors:
        raise ValidationFailed(
            "The variables do not match the workflow's inputs: "
            + "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in errors),
            errors=errors,
        )
    return out


def _coerce(spec: OutputSpec, value: Any) -> Any:
    if isinstance(value, str) and spec.type not in (None, "string"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def render_outputs(defn: WorkflowDefinition, scope: Mapping[str, Any]) -> dict[str, Any]:
    """Every output rendered and checked; :class:`OutputMismatch` names the first wrong one."""
    out: dict[str, Any] = {}
    for name, spec in defn.outputs.items():
        if isinstance(spec, str):
            out[name] = ex.render_value(spec, scope)
            continue
        value = _coerce(spec, ex.render_value(spec.value, scope))
        wrong = problem(spec, value)
        if wrong is not None:
            raise OutputMismatch(f"output '{name}' ({spec.type or 'any'}) is wrong: {wrong}")
        out[name] = value
    return out


def describe(defn: WorkflowDefinition) -> dict[str, list[dict[str, Any]]]:
    """The declared inputs and outputs as rows (``codeyard workflow show``, the UI)."""
    inputs = [
        {
            "name": name,
            "type": spec.type,
            "required": spec.required,
            "default": spec.default,
            "description": spec.description,
            "constraints": spec.constraints(),
        }
        for name, spec in defn.inputs.items()
    ]
    outputs: list[dict[str, Any]] = [
        {"name": name, "type": None, "value": spec, "description": None, "constraints": {}}
        if isinstance(spec, str)
        else {
            "name": name,
            "type": spec.type,
            "value": spec.value,
            "description": spec.description,
            "constraints": spec.constraints(),
        }
        for name, spec in defn.outputs.items()
    ]
    return {"inputs": inputs, "outputs": outputs}
