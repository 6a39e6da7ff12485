"""Which :class:`~codeyard.voice.transcribe.Transcriber` a ``voice`` setting names."""

from __future__ import annotations

from codeyard.voice.config import VoiceConfig
from codeyard.voice.local import LocalSphinx
from codeyard.voice.transcribe import OpenAICompatible, Transcriber


def transcriber(cfg: VoiceConfig, key: str | None) -> Transcriber:
    """The backend for ``cfg``; ``key`` is the API key (the local engine needs none)."""
    if cfg.backend == "local":
        return LocalSphinx(cfg)
    return OpenAICompatible(cfg, key)
