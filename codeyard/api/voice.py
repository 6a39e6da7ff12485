"""Voice: ``POST /api/voice/transcribe`` (multipart audio → text for the compose box) and the
``voice`` setting."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Svc
from codeyard.services import voice as service
from codeyard.voice import VoiceConfig
from codeyard.voice.config import MAX_AUDIO_BYTES

router = APIRouter(tags=["voice"])


class Transcript(BaseModel):
    text: str
    vocabulary: list[str] = Field(description="Repository words sent to bias recognition.")


class VoiceView(BaseModel):
    config: VoiceConfig | None


class VoiceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: VoiceConfig | None


@router.post(
    "/voice/transcribe", response_model=Transcript, dependencies=[require_scope("runs:write")]
)
async def transcribe(
    audio: Annotated[UploadFile, File(description=f"At most {MAX_AUDIO_BYTES} bytes.")],
    caller: Caller,
    svc: Svc,
    run_id: Annotated[str | None, Form(description="Bias towards this run's words.")] = None,
) -> dict[str, Any]:
    """Speech to text (the client puts it in the compose box; nothing is sent anywhere)."""
    data = await audio.read(MAX_AUDIO_BYTES + 1)
    return await service.transcribe(
        svc,
        caller,
        data,
        audio.filename or "audio",
        audio.content_type or "application/octet-stream",
        run_id,
    )


@router.get(
    "/settings/voice", response_model=VoiceView, dependencies=[require_scope("settings:read")]
)
async def get_voice(svc: Svc) -> VoiceView:
    return VoiceView(config=await service.get_config(svc))


@router.put(
    "/settings/voice", response_model=VoiceView, dependencies=[require_scope("settings:write")]
)
async def put_voice(body: VoiceUpdate, svc: Svc) -> VoiceView:
    """Set (or clear) the transcription backend: an endpoint whose key stays in an env set, or
    the local engine (checked before saving: 422 when it cannot start here)."""
    return VoiceView(config=await service.set_config(svc, body.config))
