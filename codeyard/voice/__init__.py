"""Voice: speech to text for the compose box, behind one interface (:class:`Transcriber`)."""

from codeyard.voice.config import VoiceConfig
from codeyard.voice.transcribe import OpenAICompatible, Transcriber, TranscriptionError

__all__ = ["OpenAICompatible", "Transcriber", "TranscriptionError", "VoiceConfig"]
