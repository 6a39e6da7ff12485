"""The resolved graph: explicit ``depends_on`` plus what steps read (``${steps.x…}``, ``from``,
``in``, ``step``, ``candidates``, an ``if``'s branches), checked for unknown names and cycles
with the standard library's ``graphlib``."""

from __future__ import annotations

import graphlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from codeyard.domain.errors import ValidationFailed
from codeyard.workflows import expressions as ex
from codeyard.workflows import params
from codeyard.workflows.model import (
    ApprovalStep,
    CompareStep,
    ExtractStep,
    ForeachStep,
    IfStep,
    LandStep,
    LoopStep,
    ParallelStep,
    RunStep,
    ShellStep,
    Step,
    WaitStep,
    WorkflowDefinition,
)

CONTAINERS = (ParallelStep, ForeachStep, LoopStep)
#: Steps that cannot take ``retry``: a group re-running its finished children, a condition or a
#: person's decision would not fail differently the second time.
NO_RETRY = (ParallelStep, ForeachStep, LoopStep, IfStep, ApprovalStep)


def children(step: Step) -> list[Step]:
    if isinstance(step, ParallelStep | LoopStep):
        return list(step.steps)
    if isinstance(step, ForeachStep):
        return [step.step]
    return []


def walk(steps: list[Step], parent: str | None = None) -> Iterator[tuple[Step, str | None]]:
    for step in steps:
        yield step, parent
        yield from walk(children(step), step.id)


def _texts(step: Step) -> tuple[set[str], list[str]]:
    """(step ids named by fields, texts that may hold references) of one step."""
    out = set(step.depends_on)
    texts: list[str] = [step.when or ""]
    if isinstance(step, RunStep):
        texts += [step.prompt, step.title or "", str(step.agent_options)]
        if step.from_:
            out.add(step.from_)
    elif isinstance(step, ShellStep):
        texts.append(step.command)
        out.add(step.in_)
    elif isinstance(step, ExtractStep):
        texts += [step.source, step.instructions or ""]
    elif isinstance(step, IfStep):
        texts.append(step.condition)
    elif isinstance(step, WaitStep):
        texts += [step.run or "", str(step.where)]
        if step.step:
            out.add(step.step)
    elif isinstance(step, LandStep):
        out.add(step.step)
    elif isinstance(step, ForeachStep) and isinstance(step.items, str):
        texts.append(step.items)
    elif isinstance(step, LoopStep):
        texts.append(step.until)
        out.add(step.in_)
    elif isinstance(step, CompareStep):
        out |= set(step.candidates)
        texts += [step.check or "", step.judge or ""]
    elif isinstance(step, ApprovalStep):
        texts.append(step.message)
        if step.on_reject:
            out.add(step.on_reject.step)
    return out, texts


def reads(step: Step) -> set[str]:
    """Step ids this step needs (before its own children run)."""
    out, texts = _texts(step)
    for text in texts:
        out |= ex.step_refs(text)
    return out


def var_reads(step: Step) -> set[str]:
    """Variables (``vars.x``) this step reads: made by extract steps it must wait for."""
    return {v for text in _texts(step)[1] for v in ex.var_refs(text)}


@dataclass(slots=True)
class Graph:
    steps: dict[str, Step]
    parent: dict[str, str | None]
    #: Top-level step id → the top-level steps it waits for.
    deps: dict[str, list[str]]
    #: Top-level ids in waves that may run together (for display and the dry run).
    waves: list[list[str]]
    #: Step id → (if step id, "then"|"else") for steps an ``if`` may skip.
    branch_of: dict[str, tuple[str, str]] = field(default_factory=dict)

    def top(self, step_id: str) -> str:
        current: str = step_id
        up = self.parent.get(current)
        while up is not None:
            current = up
            up = self.parent.get(current)
        return current

    def view(self) -> dict[str, Any]:
        return {
            "nodes": [
                {"id": sid, "type": s.type, "parent": self.parent[sid]}
                for sid, s in self.steps.items()
            ],
            "edges": [{"from": d, "to": sid} for sid, ds in self.deps.items() for d in ds],
            "waves": self.waves,
        }


def _problem(errors: list[dict[str, Any]], sid: str, msg: str) -> None:
    errors.append({"loc": ["definition", "steps", sid], "msg": msg})


def _check_step(
    step: Step, known: dict[str, Step], parent: dict[str, str | None], errors: list[dict[str, Any]]
) -> None:
    sid = step.id
    for ref in sorted(reads(step)):
        if ref not in known:
            _problem(errors, sid, f"refers to step '{ref}', which does not exist")
        elif ref == sid:
            _problem(errors, sid, "refers to itself")
    named: list[tuple[str, str | None]] = [
        ("from", getattr(step, "from_", None)),
        ("in", getattr(step, "in_", None)),
        ("step", step.step if isinstance(step, LandStep | WaitStep) else None),
    ]
    for name, named_id in named:
        if named_id and named_id in known and not isinstance(known[named_id], RunStep):
            kind = known[named_id].type
            _problem(errors, sid, f"'{name}' must name a run step; '{named_id}' is a {kind}")
    if isinstance(step, RunStep):
        if step.worktree != "new" and not step.from_:
            _problem(errors, sid, f"worktree '{step.worktree}' needs 'from' (a run step)")
        if step.worktree != "shared" and not step.agent_id and not step.provider:
            _problem(errors, sid, "give 'agent_id' (a profile) or 'provider'")
    if step.retry is not None and isinstance(step, NO_RETRY):
        _problem(errors, sid, f"a {step.type} step cannot retry: put 'retry' on its steps")
    if isinstance(step, ExtractStep):
        given = [step.regex, step.jsonpath, step.output_schema]
        if sum(g is not None for g in given) != 1:
            _problem(errors, sid, "give exactly one of 'regex', 'jsonpath' or 'schema'")
        if step.regex and (msg := ex.check_regex(step.regex)):
            _problem(errors, sid, f"regex: {msg}")
        if step.jsonpath and (msg := ex.check_jsonpath(step.jsonpath)):
            _problem(errors, sid, f"jsonpath: {msg}")
        if step.output_schema is not None and (msg := check_schema(step.output_schema)):
            _problem(errors, sid, f"schema: {msg}")
    if isinstance(step, WaitStep):
        _check_wait(step, errors)
    for cond in (step.when, step.condition if isinstance(step, IfStep) else None):
        if cond and (msg := ex.check_condition(ex.render_condition(cond))):
            _problem(errors, sid, f"condition {cond!r}: {msg}")
    if isinstance(step, IfStep):
        for ref in [*step.then, *step.else_]:
            if ref not in known or parent.get(ref) is not None:
                _problem(errors, sid, f"branch step '{ref}' must be a top-level step")
    if isinstance(step, ApprovalStep) and step.on_reject:
        target = known.get(step.on_reject.step)
        if target is not None and not isinstance(target, RunStep):
            _problem(errors, sid, "on_reject.step must name a run step")
    if isinstance(step, ParallelStep | ForeachStep):
        inner = {c.id for c, _ in walk(children(step))}
        for child in children(step):
            if reads(child) & inner:
                _problem(errors, child.id, "steps of one parallel group cannot wait for each other")


def check_schema(schema: dict[str, Any]) -> str | None:
    """A problem with an extraction's JSON Schema, or None. The top level must be an object:
    every backend's structured output (a response format, a forced tool) takes only objects."""
    # Imported here: jsonschema costs ~35 ms of the server's start-up CPU (issue 15).
    from jsonschema import Draft202012Validator, SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return f"not a valid JSON Schema: {exc.message}"
    if schema.get("type") != "object":
        return "the top level must be {type: object} (wrap a single value in a property)"
    return None


def _check_wait(step: WaitStep, errors: list[dict[str, Any]]) -> None:
    sid = step.id
    if step.event and step.check:
        _problem(errors, sid, "give 'event' or 'check', not both")
    if step.step and step.run:
        _problem(errors, sid, "give 'step' (a run step) or 'run' (a run id), not both")
    if (step.event or step.check) and not (step.step or step.run):
        _problem(errors, sid, "say whose log to watch: 'step' (a run step) or 'run' (a run id)")
    if step.run and not (step.event or step.check):
        _problem(errors, sid, "'run' is for waiting on an 'event' or a 'check'")
    if (step.where or step.since != "any") and not (step.event or step.check):
        _problem(errors, sid, "'where' and 'since' apply to 'event' and 'check' waits")


def resolve(defn: WorkflowDefinition) -> Graph:
    """The graph, or 422 listing every problem (unknown names, wrong kinds, cycles)."""
    errors: list[dict[str, Any]] = []
    known: dict[str, Step] = {}
    parent: dict[str, str | None] = {}
    for step, up in walk(list(defn.steps)):
        if step.id in known:
            _problem(errors, step.id, "step ids must be unique in the whole workflow")
        known[step.id] = step
        parent[step.id] = up
    producers = {s.variable: s.id for s in known.values() if isinstance(s, ExtractStep)}
    for step in known.values():
        _check_step(step, known, parent, errors)
        for name in sorted(var_reads(step) - set(producers)):
            _problem(errors, step.id, f"reads vars.{name}, which no extract step makes")
    errors += params.check_definition(defn)
    graph = Graph(known, parent, {}, [])

    def lift(ids: set[str], own: str) -> set[str]:
        return {graph.top(i) for i in ids if i in known} - {own}

    for step in defn.steps:
        needs: set[str] = set()
        for inner, _ in walk([step]):
            made = {producers[v] for v in var_reads(inner) if v in producers}
            needs |= lift(reads(inner) | made, step.id)
        graph.deps[step.id] = sorted(needs)
    for step in defn.steps:
        if isinstance(step, IfStep):
            for branch, ids in (("then", step.then), ("else", step.else_)):
                for ref in ids:
                    if ref in graph.deps and step.id not in graph.deps[ref]:
                        graph.deps[ref] = sorted([*graph.deps[ref], step.id])
                    graph.branch_of[ref] = (step.id, branch)
    if not errors:
        sorter = graphlib.TopologicalSorter(graph.deps)
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            cycle = " → ".join(exc.args[1])
            errors.append({"loc": ["definition", "steps"], "msg": f"steps form a cycle: {cycle}"})
        else:
            while sorter.is_active():
                wave = sorted(sorter.get_ready())
                graph.waves.append(wave)
                sorter.done(*wave)
    if errors:
        raise ValidationFailed(
            f"The workflow cannot run: {errors[0]['loc'][-1]}: {errors[0]['msg']}"
            + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
            errors=errors,
        )
    return graph


def check_inputs(defn: WorkflowDefinition, given: dict[str, Any]) -> dict[str, Any]:
    """The execution's inputs (see :func:`.params.check_inputs`)."""
    return params.check_inputs(defn, given)
