"""The ``voice`` setting: an OpenAI-compatible ``/audio/transcriptions`` endpoint (a local
whisper.cpp or faster-whisper server, or a cloud one) and where its key comes from."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: The largest recording accepted (the OpenAI API's own limit).
MAX_AUDIO_BYTES = 25 * 1024 * 1024


class VoiceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["openai"] = "openai"
    base_url: str = Field(
        default="https://api.openai.com/v1",
        max_length=500,
        description="Endpoint root; /audio/transcriptions is appended.",
    )
    model: str = Field(default="whisper-1", min_length=1, max_length=200)
    env_set_id: str | None = Field(default=None, description="Env set holding the API key.")
    key_variable: str = Field(default="OPENAI_API_KEY", max_length=100)
    language: str | None = Field(default=None, max_length=10, description="e.g. 'en'.")
    timeout_seconds: float = Field(default=120.0, gt=0, le=600)

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")
