"""The ``voice`` setting: an OpenAI-compatible ``/audio/transcriptions`` endpoint (a local
whisper.cpp or faster-whisper server, or a cloud one) and where its key comes from, or the
local engine (PocketSphinx from the ``voice-local`` extra, run in a child process) with an
optional model directory."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: The largest recording accepted (the OpenAI API's own limit).
MAX_AUDIO_BYTES = 25 * 1024 * 1024


class VoiceConfig(BaseModel):
    # Built with the first voice request, not at start-up: the app imports this module for
    # MAX_AUDIO_BYTES only (issue 15).
    model_config = ConfigDict(extra="forbid", defer_build=True)

    backend: Literal["openai", "local"] = Field(
        default="openai",
        description="'openai': the endpoint below; 'local': PocketSphinx on this server "
        "(pip install 'codeyard[voice-local]'), no network.",
    )
    base_url: str = Field(
        default="https://api.openai.com/v1",
        max_length=500,
        description="Endpoint root; /audio/transcriptions is appended.",
    )
    model: str = Field(default="whisper-1", min_length=1, max_length=200)
    env_set_id: str | None = Field(default=None, description="Env set holding the API key.")
    key_variable: str = Field(default="OPENAI_API_KEY", max_length=100)
    language: str | None = Field(default=None, max_length=10, description="e.g. 'en'.")
    model_dir: str | None = Field(
        default=None,
        max_length=1000,
        description="local only: a PocketSphinx model directory (acoustic model folder, *.dict, "
        "*.lm.bin); unset = the US English model that ships with the extra.",
    )
    timeout_seconds: float = Field(default=120.0, gt=0, le=600)

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("model_dir")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("model_dir must be an absolute path on the server")
        return value
