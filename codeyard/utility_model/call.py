"""A structured call: the reply must validate against a pydantic model; one retry with the
validation error; every attempt's tokens and cost recorded by the caller's ``record``."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from codeyard.pricing.prices import cost_usd
from codeyard.utility_model import backends
from codeyard.utility_model.backends import BackendError, Raw
from codeyard.utility_model.config import UtilityModelConfig

M = TypeVar("M", bound=BaseModel)
Record = Callable[..., Awaitable[None]]


class UtilityModelError(Exception):
    """The utility model could not give a valid answer; the message says why."""


@dataclass(frozen=True, slots=True)
class Answer(Generic[M]):
    value: M
    attempts: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None


def _parse(text: str, schema: type[M]) -> M:
    body = text.strip()
    if body.startswith("```"):  # some models fence JSON even when asked not to
        body = body.strip("`").removeprefix("json").strip()
    return schema.model_validate(json.loads(body))


async def _once(
    cfg: UtilityModelConfig,
    secrets: dict[str, str],
    system: str,
    user: str,
    schema: dict[str, object],
) -> Raw:
    if cfg.backend == "openai":
        return await backends.openai_chat(cfg, secrets.get(cfg.key_name), system, user, schema)
    if cfg.backend == "anthropic":
        return await backends.anthropic_messages(
            cfg, secrets.get(cfg.key_name), system, user, schema
        )
    return await backends.claude_cli(cfg, secrets, system, user, schema)


async def structured(
    cfg: UtilityModelConfig,
    secrets: dict[str, str],
    system: str,
    user: str,
    schema: type[M],
    record: Record,
) -> Answer[M]:
    """Ask, validate, and ask once more (with the error) when the reply does not fit."""
    json_schema = schema.model_json_schema()
    prompt = user
    spent_in = spent_out = 0
    cost: float | None = None
    for attempt in (1, 2):
        try:
            raw = await _once(cfg, secrets, system, prompt, json_schema)
        except BackendError as exc:
            raise UtilityModelError(f"The utility model ({cfg.backend}) failed: {exc}") from exc
        spent_in += raw.input_tokens
        spent_out += raw.output_tokens
        price = raw.cost_usd
        if price is None:
            usage = {"input_tokens": raw.input_tokens, "output_tokens": raw.output_tokens}
            price = cost_usd(raw.model, usage)
        if price is not None:
            cost = (cost or 0.0) + price
        try:
            value = _parse(raw.text, schema)
        except (ValueError, ValidationError) as exc:
            await record(
                Raw(raw.text, raw.model, raw.input_tokens, raw.output_tokens, price), ok=False
            )
            if attempt == 2:
                raise UtilityModelError(
                    f"The utility model's answer did not fit the expected shape twice: {exc}"
                ) from exc
            prompt = (
                f"{user}\n\nYour previous answer was not valid ({str(exc)[:400]}). Answer again "
                "with only a JSON object that matches the schema."
            )
            continue
        await record(Raw(raw.text, raw.model, raw.input_tokens, raw.output_tokens, price), ok=True)
        return Answer(value, attempt, spent_in, spent_out, cost)
    raise AssertionError("unreachable")
