"""Recordings as browsers send them (MediaRecorder's webm/opus or ogg/opus, Safari's mp4/aac,
wav, mp3, flac) to what recognizers eat: 16 kHz mono signed 16-bit PCM. PyAV carries FFmpeg's
decoders inside its wheel, so no system ffmpeg is needed. Used by the local engine's worker
process only (never imported by the server)."""

from __future__ import annotations

import io

import av
from av.audio.frame import AudioFrame
from av.error import FFmpegError

from codeyard.voice.transcribe import AudioError

RATE = 16_000
#: The local engine takes dictation, not meetings: longer recordings are refused.
MAX_SECONDS = 300


def _bytes(frame: AudioFrame) -> bytes:
    # Packed s16 mono: the first plane holds every sample (it may be padded past them).
    return bytes(frame.planes[0])[: frame.samples * 2]


def pcm16k(data: bytes, max_seconds: float = MAX_SECONDS) -> bytes:
    """Decode ``data`` (any container FFmpeg knows) to 16 kHz mono s16le."""
    limit = int(max_seconds * RATE * 2)
    out = bytearray()
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise AudioError("the upload has no audio track")
            for frame in container.decode(container.streams.audio[0]):
                for piece in resampler.resample(frame):
                    out += _bytes(piece)
                if len(out) > limit:
                    raise AudioError(
                        f"the recording is longer than {max_seconds:g} s: "
                        "the local engine takes dictation"
                    )
            for piece in resampler.resample(None):
                out += _bytes(piece)
    except (FFmpegError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise AudioError(f"cannot decode the audio ({reason})") from exc
    if not out:
        raise AudioError("the recording holds no samples")
    return bytes(out)
