"""A session's model as ACP agents report it, and how it can be changed mid-prompt."""

from __future__ import annotations

from typing import Any


def plain_model(model_id: str) -> str:
    """A model id without the routing Qwen Code wraps it in: ``$runtime|openai|qwen3(openai)``
    → ``qwen3`` (the last ``|`` part, less an ``(auth type)`` suffix)."""
    plain = model_id.rsplit("|", 1)[-1]
    if plain.endswith(")") and "(" in plain:
        plain = plain[: plain.rindex("(")]
    return plain or model_id


def model_of(result: Any) -> str | None:
    """The session's model as ``session/new`` reports it (Gemini, Qwen Code: ``models``,
    OpenCode: a ``model`` config option)."""
    if not isinstance(result, dict):
        return None
    models = result.get("models")
    if isinstance(models, dict) and isinstance(models.get("currentModelId"), str):
        return plain_model(str(models["currentModelId"]))
    for option in result.get("configOptions") or []:
        if isinstance(option, dict) and option.get("id") == "model":
            value = option.get("currentValue")
            return value if isinstance(value, str) else None
    return None


def switch_method(result: Any) -> str | None:
    """How this session's model can be changed during a prompt: ``session/set_model`` where
    ``session/new`` listed ``models`` (Gemini CLI; providers opt in with ``mid_turn_model``
    once a real test shows the switch reaches the next model call). OpenCode's ``model``
    config option is not used: untested."""
    if isinstance(result, dict) and isinstance(result.get("models"), dict):
        return "session/set_model"
    return None
