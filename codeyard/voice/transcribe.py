"""Transcription backends behind one interface. The OpenAI-compatible one covers the cloud API
and local servers (whisper.cpp ``--inference-path /v1/audio/transcriptions``, faster-whisper
servers, LocalAI, speaches); a vocabulary prompt biases recognition towards the repo's words.
The local engine (PocketSphinx, no server at all) lives in :mod:`codeyard.voice.local`.
"""

from __future__ import annotations

from typing import Protocol

from codeyard.voice.config import VoiceConfig


class TranscriptionError(Exception):
    """The backend could not transcribe; the message says why (never the key)."""


class AudioError(TranscriptionError):
    """The upload is not audio the backend can decode (the client's fault, not the backend's)."""


class Transcriber(Protocol):
    async def transcribe(
        self, audio: bytes, filename: str, content_type: str, vocabulary: list[str]
    ) -> str: ...


def vocabulary_prompt(words: list[str], limit: int = 800) -> str:
    """Whisper-style prompt: the words the speaker is likely to say, most useful first."""
    out: list[str] = []
    size = 0
    for word in dict.fromkeys(w for w in words if w):
        if size + len(word) + 2 > limit:
            break
        out.append(word)
        size += len(word) + 2
    return ", ".join(out)


class OpenAICompatible:
    def __init__(self, cfg: VoiceConfig, key: str | None) -> None:
        self._cfg = cfg
        self._key = key

    async def transcribe(
        self, audio: bytes, filename: str, content_type: str, vocabulary: list[str]
    ) -> str:
        data = {"model": self._cfg.model, "response_format": "json"}
        prompt = vocabulary_prompt(vocabulary)
        if prompt:
            data["prompt"] = prompt
        if self._cfg.language:
            data["language"] = self._cfg.language
        headers = {"authorization": f"Bearer {self._key}"} if self._key else {}
        url = f"{self._cfg.base_url}/audio/transcriptions"
        import httpx  # on first use, not at the server's start-up (issue 15)

        async with httpx.AsyncClient(timeout=self._cfg.timeout_seconds, trust_env=False) as client:
            try:
                resp = await client.post(
                    url, headers=headers, data=data, files={"file": (filename, audio, content_type)}
                )
            except httpx.HTTPError as exc:
                raise TranscriptionError(f"cannot reach {url}: {type(exc).__name__}") from exc
        if resp.status_code >= 400:
            raise TranscriptionError(f"{url} answered {resp.status_code}: {resp.text[:300]}")
        try:
            text = resp.json()["text"]
        except (ValueError, KeyError, TypeError) as exc:
            raise TranscriptionError(f"{url} did not answer with {{'text': …}}") from exc
        return str(text).strip()
