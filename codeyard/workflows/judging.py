"""Steps that ask the utility model: extraction into a JSON Schema the workflow gives, and the
judgement of a best-of-N ``compare``. Every call goes through :func:`services.utility.ask`
(recorded with its tokens and cost like any other utility call); its cost is reported in the
step's output (``model_cost_usd``) so execution budgets and loop caps count it."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, RootModel, model_validator

from codeyard.auth.principal import Principal
from codeyard.domain.errors import Conflict
from codeyard.services import utility
from codeyard.services.context import Services
from codeyard.utility_model.prompts import prompt

#: Characters of one candidate's diff shown to the judge (the model's context is not free).
DIFF_CHARS = 6000
MESSAGE_CHARS = 2000


class ModelFailed(Exception):
    """The utility model is not configured (``retryable`` False) or gave no valid answer."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def schema_model(schema: dict[str, Any]) -> type[BaseModel]:
    """A pydantic model whose JSON Schema is ``schema`` and whose validation is the JSON Schema
    validator's, so the utility model's seam (typed answers, one retry with the error) serves
    a schema that only exists at run time."""
    # Imported here: jsonschema costs ~35 ms of the server's start-up CPU (issue 15).
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    validator = Draft202012Validator(schema)

    class Answer(RootModel[dict[str, Any]]):
        @model_validator(mode="after")
        def _fits(self) -> Self:
            error = best_match(validator.iter_errors(self.root))
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "the answer"
                raise ValueError(f"{where}: {error.message}")
            return self

        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return schema

    return Answer


async def _ask(
    svc: Services,
    principal: Principal,
    purpose: str,
    system: str,
    user: str,
    schema: dict[str, Any],
) -> tuple[dict[str, Any], float]:
    if await utility.get_config(svc) is None:
        raise ModelFailed(
            "no utility model is configured: set one with PUT /api/settings/utility-model",
            retryable=False,
        )
    try:
        answer = await utility.ask(
            svc, principal, purpose, None, system, user, schema_model(schema)
        )
    except Conflict as exc:
        raise ModelFailed(exc.detail, retryable=True) from exc
    value = answer.value.model_dump()
    return dict(value), float(answer.cost_usd or 0.0)


async def extract(
    svc: Services,
    principal: Principal,
    schema: dict[str, Any],
    instructions: str | None,
    text: str,
) -> tuple[dict[str, Any], float]:
    """(the object the model filled from ``text``, its cost in USD)."""
    user = f"What to extract: {instructions or 'fill the schema'}\n\nSource text:\n{text}"
    return await _ask(svc, principal, "workflow_extract", prompt("workflow_extract"), user, schema)


def _candidate(c: dict[str, Any]) -> str:
    return (
        f"## Candidate {c['candidate']}\n"
        f"check passed: {c['passed']}; diff size: {c['diff_size']} lines; "
        f"cost: ${float(c['cost_usd']):.4f}\n"
        f"Final message:\n{str(c.get('message') or '')[:MESSAGE_CHARS]}\n"
        f"Diff:\n{str(c.get('diff') or '(no changes)')[:DIFF_CHARS]}\n"
    )


async def judge(
    svc: Services, principal: Principal, criteria: str, candidates: list[dict[str, Any]]
) -> tuple[dict[str, Any], float]:
    """(``{winner, reason}`` with ``winner`` one of the candidates' names, its cost in USD)."""
    names = [str(c["candidate"]) for c in candidates]
    schema = {
        "type": "object",
        "properties": {
            "winner": {"type": "string", "enum": names},
            "reason": {"type": "string"},
        },
        "required": ["winner", "reason"],
        "additionalProperties": False,
    }
    user = f"Criteria: {criteria}\n\n" + "\n".join(_candidate(c) for c in candidates)
    return await _ask(svc, principal, "workflow_judge", prompt("workflow_judge"), user, schema)
