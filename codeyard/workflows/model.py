"""Workflow definitions: typed steps (a discriminated union on ``type``) and the JSON Schema
published at ``GET /api/workflows/schema`` so editors can complete them."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from codeyard.domain.errors import ValidationFailed

STEP_ID = r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$"
WaitFor = Literal["all", "any", "none"]
LandAction = Literal["merge", "squash", "rebase", "discard", "create_pr"]
#: Failures that may go away when tried again. Others (a template naming nothing, a spent
#: budget, a person's rejection, a landing conflict) fail the same way every time: never retried.
RetryOn = Literal["run_failed", "exit_code", "timeout", "utility_model"]
RETRYABLE: tuple[RetryOn, ...] = ("run_failed", "exit_code", "timeout", "utility_model")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Retry(_Model):
    """Try a failed step again: a run step gets a new run, a shell step runs its command again."""

    max: int = Field(ge=1, le=10, description="Attempts after the first.")
    backoff: float = Field(
        1.0, ge=0, le=3600, description="Seconds before the first retry; times `factor` after."
    )
    factor: float = Field(2.0, ge=1, le=10)
    max_delay: float = Field(300, ge=0, le=86400, description="Cap on one wait, in seconds.")
    on: list[RetryOn] = Field(
        default_factory=lambda: list(RETRYABLE),
        min_length=1,
        description="Which failures retry: run_failed (the run ended failed or cancelled), "
        "exit_code (a command exited non-zero), timeout, utility_model (no valid answer).",
    )

    def delay(self, attempt: int) -> float:
        """Seconds to wait after attempt ``attempt`` (0-based) failed."""
        return float(min(self.backoff * self.factor**attempt, self.max_delay))


class _Step(_Model):
    id: str = Field(pattern=STEP_ID, description="Unique within the workflow.")
    depends_on: list[str] = Field(default_factory=list, description="Steps that must end first.")
    when: str | None = Field(
        None, description="A condition (safe expression); when false the step is skipped."
    )
    retry: Retry | None = Field(
        None, description="Retry on error (run, shell, wait, extract, compare and land steps)."
    )


class RunStep(_Step):
    """An ordinary Codeyard run (policies, approvals, budget, sandbox all apply)."""

    type: Literal["run"]
    prompt: str = Field(min_length=1, description="Template: ${inputs.x}, ${steps.s.field}.")
    title: str | None = None
    agent_id: str | None = Field(None, description="An agent profile (or give provider).")
    provider: str | None = None
    model: str | None = None
    agent_options: dict[str, Any] = Field(default_factory=dict)
    worktree: Literal["new", "inherit", "shared"] = Field(
        "new",
        description="new: from the execution's repo; inherit: a new run from the branch of "
        "step `from`; shared: a new turn in the run of step `from` (same worktree, session).",
    )
    from_: str | None = Field(None, alias="from")
    budget_usd: float | None = Field(None, gt=0)


class ShellStep(_Step):
    """A command in the worktree of a run step, sandboxed like the run's own processes."""

    type: Literal["shell"]
    command: str = Field(min_length=1)
    in_: str = Field(alias="in", description="The run step whose worktree the command runs in.")
    timeout_seconds: float = Field(600, gt=0, le=86400)
    allow_failure: bool = Field(False, description="Record a non-zero exit instead of failing.")


class OnReject(_Model):
    step: str = Field(description="The run step sent back with the reviewer's reason.")
    max_attempts: int = Field(1, ge=1, le=10)


class ApprovalStep(_Step):
    """A person decides (``POST …/executions/{id}/steps/{step}/decide``)."""

    type: Literal["approval"]
    message: str = ""
    on_reject: OnReject | None = None


class WaitStep(_Step):
    """Wait for a run step's run to reach a status, for an event in a run's log (``event``),
    for a check's result (``check``), or just for a while (``timeout_seconds`` alone)."""

    type: Literal["wait"]
    step: str | None = Field(None, description="The run step whose run is watched.")
    run: str | None = Field(
        None, description="Or a template resolving to a run id, e.g. ${steps.build.run_id}."
    )
    status: list[str] = Field(default_factory=lambda: ["review"])
    event: str | None = Field(
        None,
        description="An event type of the run's log (e.g. check.suite_completed); also "
        "check.passed / check.failed (a check suite that passed / failed).",
    )
    where: dict[str, Any] = Field(
        default_factory=dict, description="Members the event's data must equal."
    )
    check: str | None = Field(
        None,
        description="A check's name: its latest result (or the next one); the step fails if "
        "the check failed.",
    )
    since: Literal["any", "now"] = Field(
        "any",
        description="any: the latest matching event already in the run's log counts (else the "
        "next one); now: only one written after the step began waiting.",
    )
    timeout_seconds: float | None = Field(None, gt=0)


class ExtractStep(_Step):
    """Pull a value out of text (regex, first group), JSON (JSONPath), or prose (an object
    matching a JSON schema, through the utility model) into ``vars.<into>``."""

    type: Literal["extract"]
    source: str = Field(description="Template resolving to the text to search.")
    regex: str | None = None
    jsonpath: str | None = None
    output_schema: dict[str, Any] | None = Field(
        None,
        alias="schema",
        description="A JSON Schema (type: object) the utility model fills from the source.",
    )
    instructions: str | None = Field(
        None, description="What to extract (template), for a schema extraction."
    )
    into: str | None = Field(None, pattern=STEP_ID, description="Defaults to the step id.")

    @property
    def variable(self) -> str:
        return self.into or self.id


class IfStep(_Step):
    """Evaluate a condition; the steps of the branch not taken are skipped."""

    type: Literal["if"]
    condition: str
    then: list[str] = Field(default_factory=list)
    else_: list[str] = Field(default_factory=list, alias="else")


class ParallelStep(_Step):
    type: Literal["parallel"]
    steps: list[Step] = Field(min_length=1)
    wait: WaitFor = "all"
    max_concurrency: int | None = Field(None, ge=1)


class ForeachStep(_Step):
    """The step template once per item (``${item}``, ``${index}``)."""

    type: Literal["foreach"]
    items: list[Any] | str = Field(description="A list, or a template resolving to a JSON list.")
    step: Step
    wait: WaitFor = "all"
    max_concurrency: int | None = Field(None, ge=1)


class LoopStep(_Step):
    """Run ``steps`` in order, then ``until`` in the worktree of ``in``; repeat until it exits 0."""

    type: Literal["loop"]
    steps: list[Step] = Field(min_length=1)
    until: str = Field(min_length=1, description="A shell command; exit 0 ends the loop.")
    in_: str = Field(alias="in")
    max_iterations: int = Field(5, ge=1, le=100)
    max_cost_usd: float | None = Field(
        None,
        gt=0,
        description="Stop (the step fails) once the loop's runs and model calls have cost more.",
    )


class LandStep(_Step):
    """Land a run step's work with the run's own landing rules."""

    type: Literal["land"]
    step: str
    action: LandAction = "merge"
    target_branch: str | None = None


class CompareStep(_Step):
    """Best-of-N: score candidate runs (check passes, smaller diff, lower cost), pick one."""

    type: Literal["compare"]
    candidates: list[str] = Field(
        min_length=1, description="Run steps, or a parallel/foreach step (its run children)."
    )
    check: str | None = Field(None, description="Shell command run in each worktree (exit 0).")
    judge: str | None = Field(
        None,
        description="Criteria (template) for the utility model, which picks the winner among "
        "the candidates that passed the check, from their diffs and final messages.",
    )
    land: LandAction | None = Field(None, description="Land the winner; the rest are discarded.")


Step = Annotated[
    RunStep
    | ShellStep
    | ApprovalStep
    | WaitStep
    | ExtractStep
    | IfStep
    | ParallelStep
    | ForeachStep
    | LoopStep
    | LandStep
    | CompareStep,
    Field(discriminator="type"),
]
for _m in (ParallelStep, ForeachStep, LoopStep):
    _m.model_rebuild()


ValueType = Literal["string", "number", "integer", "boolean", "object", "array"]


class _Typed(_Model):
    """A value's type plus a subset of JSON Schema's constraints (same names as JSON Schema),
    checked with the ``jsonschema`` library (:mod:`.params`)."""

    description: str | None = None
    enum: list[Any] | None = Field(None, min_length=1, description="The allowed values.")
    minimum: int | float | None = None
    maximum: int | float | None = None
    min_length: int | None = Field(None, ge=0, alias="minLength")
    max_length: int | None = Field(None, ge=0, alias="maxLength")
    pattern: str | None = Field(None, description="A regular expression a string must match.")
    min_items: int | None = Field(None, ge=0, alias="minItems")
    max_items: int | None = Field(None, ge=0, alias="maxItems")
    items: dict[str, Any] | None = Field(None, description="A JSON Schema for an array's items.")
    properties: dict[str, dict[str, Any]] | None = Field(
        None, description="JSON Schemas of an object's members."
    )
    required_properties: list[str] | None = Field(
        None, alias="requiredProperties", description="Members an object must have."
    )

    def constraints(self) -> dict[str, Any]:
        """The JSON Schema keywords given (besides ``type``)."""
        data = self.model_dump(
            by_alias=True,
            exclude_none=True,
            exclude={"description", "required_properties", "type", "required", "default", "value"},
        )
        if self.required_properties is not None:
            data["required"] = self.required_properties
        return data


class InputSpec(_Typed):
    type: ValueType = "string"
    required: bool = False
    default: Any = Field(None, description="Used when the input is not given; has the type.")


class OutputSpec(_Typed):
    """An output computed from a template when the execution ends, checked against its type."""

    value: str = Field(min_length=1, description="Template: ${steps.s.field}, ${vars.x}.")
    type: ValueType | None = Field(None, description="Leave out to accept any value.")


class WorkflowDefinition(_Model):
    """The whole document (``.codeyard/workflows/<name>.yaml``)."""

    schema_: str | None = Field(None, alias="$schema")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    budget_usd: float | None = Field(None, gt=0, description="What all run steps may spend.")
    outputs: dict[str, str | OutputSpec] = Field(
        default_factory=dict, description="Name → template, or a typed output {value, type}."
    )
    steps: list[Step] = Field(min_length=1)


def json_schema() -> dict[str, Any]:
    """The published schema (by alias: ``from``, ``in``, ``else``, ``$schema``)."""
    schema = WorkflowDefinition.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Codeyard workflow"
    return schema


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": ["definition", *e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def parse_text(source: str) -> dict[str, Any]:
    """YAML (a superset of JSON) to a mapping; 422 with the line for a syntax error."""
    import yaml  # on first use, not at the server's start-up (issue 15)

    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValidationFailed(
            f"The workflow is not valid YAML or JSON{where}: fix the syntax and send it again.",
            errors=[{"loc": ["source"], "msg": str(exc), "line": mark.line + 1 if mark else None}],
        ) from exc
    if not isinstance(data, dict):
        raise ValidationFailed(
            "A workflow is a mapping with 'name' and 'steps'.",
            errors=[{"loc": ["source"], "msg": "must be a mapping"}],
        )
    return data


def load(data: dict[str, Any]) -> WorkflowDefinition:
    """The typed definition, or 422 listing every field that is wrong."""
    try:
        return WorkflowDefinition.model_validate(data)
    except ValidationError as exc:
        errors = _errors(exc)
        first = errors[0]
        raise ValidationFailed(
            f"The workflow definition is not valid: {'.'.join(map(str, first['loc']))}: "
            f"{first['msg']} (see GET /api/workflows/schema).",
            errors=errors,
        ) from exc


def dump(defn: WorkflowDefinition) -> dict[str, Any]:
    return defn.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"schema_"})


def to_yaml(data: dict[str, Any]) -> str:
    """The source text of a definition posted as an object (shown in the editor)."""
    import yaml

    return str(yaml.safe_dump(data, sort_keys=False))


def digest(defn: dict[str, Any], inputs: dict[str, Any]) -> str:
    """The snapshot's identity: the resolved definition and the inputs an execution started with."""
    body = json.dumps({"definition": defn, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()
