"""Voice: speech to text for the compose box, behind one interface (:class:`Transcriber`)."""

from codeyard.voice.backends import transcriber
from codeyard.voice.config import VoiceConfig
from codeyard.voice.local import LocalSphinx
from codeyard.voice.transcribe import (
    AudioError,
    OpenAICompatible,
    Transcriber,
    TranscriptionError,
)

__all__ = [
    "AudioError",
    "LocalSphinx",
    "OpenAICompatible",
    "Transcriber",
    "TranscriptionError",
    "VoiceConfig",
    "transcriber",
]
