"""Speech as browsers send it, for the voice tests and bench/voice_local.py."""

from __future__ import annotations

import io

import av


def as_webm(wav: bytes) -> bytes:
    """Opus at 48 kHz in WebM, what Chrome's and Firefox's MediaRecorder produce."""
    buf = io.BytesIO()
    with av.open(io.BytesIO(wav)) as src, av.open(buf, mode="w", format="webm") as dst:
        stream = dst.add_stream("libopus", rate=48_000)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48_000)
        for frame in src.decode(src.streams.audio[0]):
            for piece in resampler.resample(frame):
                dst.mux(stream.encode(piece))
        for piece in resampler.resample(None):
            dst.mux(stream.encode(piece))
        dst.mux(stream.encode(None))
    return buf.getvalue()
