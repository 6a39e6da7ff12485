"""The ``utility_model`` setting: which backend, which model, where the key comes from.

Keys are never stored in the setting: ``env_set_id`` names an (encrypted) env set and
``key_variable`` the variable in it that holds the key.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Backend = Literal["openai", "anthropic", "claude-cli"]
DEFAULT_KEY_VARIABLE = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
DEFAULT_BASE_URL = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}


class UtilityModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Backend = Field(
        description="openai (any OpenAI-compatible Chat Completions endpoint), anthropic "
        "(Messages API) or claude-cli (one-shot `claude -p` with the user's own login)."
    )
    model: str = Field(min_length=1, max_length=200)
    base_url: str | None = Field(
        default=None, max_length=500, description="Endpoint root, e.g. http://127.0.0.1:8080/v1."
    )
    env_set_id: str | None = Field(default=None, description="Env set holding the API key.")
    key_variable: str | None = Field(
        default=None, max_length=100, description="Variable of that env set with the key."
    )
    timeout_seconds: float = Field(default=60.0, gt=0, le=600)

    @model_validator(mode="after")
    def _endpoint(self) -> UtilityModelConfig:
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return self

    @property
    def url(self) -> str:
        return (self.base_url or DEFAULT_BASE_URL.get(self.backend, "")).rstrip("/")

    @property
    def key_name(self) -> str:
        return self.key_variable or DEFAULT_KEY_VARIABLE.get(self.backend, "")
