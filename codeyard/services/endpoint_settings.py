"""Settings that name an external endpoint whose key lives in an env set (the utility model,
voice transcription): stored under their own key, the env set checked before saving."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

from codeyard.crypto import secret_box
from codeyard.domain.errors import ValidationFailed
from codeyard.services.context import Services
from codeyard.store import env_sets
from codeyard.store import settings as settings_store

C = TypeVar("C", bound=BaseModel)


async def load(svc: Services, key: str, model: type[C]) -> C | None:
    stored = (await settings_store.read(svc.engine)).get(key)
    return model.model_validate(stored) if stored else None


async def save(svc: Services, key: str, cfg: C | None, env_set_id: str | None) -> C | None:
    """Store ``cfg`` (``None`` clears it) after checking that its env set exists."""
    if env_set_id is not None:
        async with svc.engine.connect() as conn:
            try:
                await env_sets.environment_for(
                    conn, secret_box(svc.settings.secret_key_path), [env_set_id]
                )
            except ValidationFailed as exc:
                raise ValidationFailed(
                    f"No env set '{env_set_id}': create it first (POST /api/env-sets).",
                    errors=[{"loc": ["body", "env_set_id"], "msg": "unknown env set"}],
                ) from exc
    value = cfg.model_dump() if cfg is not None else None
    await settings_store.save(svc.writer, {key: value})
    return cfg
