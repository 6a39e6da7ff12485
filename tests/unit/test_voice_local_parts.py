"""The local voice engine's pure parts: model-directory resolution, which repository words it
can add to PocketSphinx's dictionary (with the real bundled dictionary), and decoding what
browsers record with PyAV (a real webm/opus file encoded here)."""

from __future__ import annotations

import io
import math
import wave
from pathlib import Path

import av
import pocketsphinx
import pytest

from codeyard.voice import AudioError, VoiceConfig, local
from codeyard.voice.audio import RATE, pcm16k
from codeyard.voice.local import ModelDirError, bundled_model_dir, check, find_model
from codeyard.voice.sphinx_worker import bias_entries, split_identifier


def _tone_wav(seconds: float, rate: int = 22_050) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        frames = bytearray()
        for i in range(int(seconds * rate)):
            sample = int(8000 * math.sin(2 * math.pi * 440 * i / rate))
            frames += sample.to_bytes(2, "little", signed=True)
        out.writeframes(bytes(frames))
    return buf.getvalue()


def _webm_opus(seconds: float) -> bytes:
    """What Chrome's and Firefox's MediaRecorder send: Opus at 48 kHz in a WebM container."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="webm") as out:
        stream = out.add_stream("libopus", rate=48_000)
        samples = int(seconds * 48_000)
        step = 960
        for start in range(0, samples, step):
            pcm = bytearray()
            for i in range(start, start + step):
                value = int(8000 * math.sin(2 * math.pi * 440 * i / 48_000))
                pcm += value.to_bytes(2, "little", signed=True)
            frame = av.AudioFrame(format="s16", layout="mono", samples=step)
            frame.planes[0].update(bytes(pcm))
            frame.sample_rate = 48_000
            frame.pts = start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def test_the_bundled_model_is_found_without_a_model_dir() -> None:
    model = find_model(None)
    assert model.hmm == bundled_model_dir() / "en-us"
    assert model.dictionary.name == "cmudict-en-us.dict"
    assert model.lm.name == "en-us.lm.bin"  # not the phone-loop model beside it
    assert check(VoiceConfig(backend="local")) == model


def test_a_user_model_dir_is_resolved_or_refused_with_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "acoustic").mkdir()
    with pytest.raises(ModelDirError, match="exactly one acoustic model folder"):
        find_model(str(tmp_path))
    (tmp_path / "acoustic" / "mdef").write_text("0.3\n")
    with pytest.raises(ModelDirError, match=r"\*\.dict dictionary"):
        find_model(str(tmp_path))
    (tmp_path / "fr.dict").write_text("bonjour b o n j ou r\n")
    with pytest.raises(ModelDirError, match="language model"):
        find_model(str(tmp_path))
    (tmp_path / "fr-small.lm.bin").write_bytes(b"\0")
    model = find_model(str(tmp_path))
    assert (model.hmm.name, model.dictionary.name, model.lm.name) == (
        "acoustic",
        "fr.dict",
        "fr-small.lm.bin",
    )
    with pytest.raises(ModelDirError, match="not a directory"):
        find_model(str(tmp_path / "nowhere"))
    with pytest.raises(ModelDirError, match="cannot read"):
        find_model("/" + "a" * 300)  # ENAMETOOLONG: a 422 on PUT, not a 500
    with pytest.raises(ValueError, match="absolute path"):
        VoiceConfig(backend="local", model_dir="models/fr")


def test_identifiers_split_into_spoken_parts() -> None:
    assert split_identifier("compute_invoice_total") == ["compute", "invoice", "total"]
    assert split_identifier("InvoiceTotal") == ["invoice", "total"]
    assert split_identifier("parseHTTPResponse") == ["parse", "http", "response"]
    assert split_identifier("user-settings") == ["user", "settings"]


def test_only_pronounceable_repository_words_are_added() -> None:
    model = find_model(None)
    decoder = pocketsphinx.Decoder(
        hmm=str(model.hmm), dict=str(model.dictionary), lm=str(model.lm), samprate=16000
    )
    words = ["compute_invoice_total", "InvoiceTotal", "xqzt_handler", "invoice.py", "billing"]
    entries = dict(bias_entries([*words, "billing"], decoder.lookup_word))
    parts = [decoder.lookup_word(p) for p in ("compute", "invoice", "total")]
    assert entries["compute_invoice_total"] == " ".join(p for p in parts if p)
    assert "InvoiceTotal" in entries and "billing" in entries
    assert "xqzt_handler" not in entries  # no pronunciation for 'xqzt': left out, not guessed
    assert "invoice.py" not in entries  # its stem 'invoice' comes separately


def test_wav_is_resampled_to_16k_mono() -> None:
    pcm = pcm16k(_tone_wav(1.5))
    assert abs(len(pcm) / 2 / RATE - 1.5) < 0.05


def test_browser_webm_opus_decodes() -> None:
    pcm = pcm16k(_webm_opus(2.0))
    assert abs(len(pcm) / 2 / RATE - 2.0) < 0.1
    assert (
        max(
            abs(int.from_bytes(pcm[i : i + 2], "little", signed=True))
            for i in range(0, len(pcm), 200)
        )
        > 2000
    )  # the tone, not silence


def test_what_is_not_audio_or_too_long_is_refused() -> None:
    with pytest.raises(AudioError, match="cannot decode"):
        pcm16k(b"hello, this is text")
    with pytest.raises(AudioError, match="longer than 1 s"):
        pcm16k(_tone_wav(2.0), max_seconds=1)


def test_without_the_extra_the_fix_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """An install without ``voice-local`` cannot exist in this venv (the dev extra has it), so
    the lookup of PyAV is what is faked here."""
    real = local.find_spec
    monkeypatch.setattr(local, "find_spec", lambda name: None if name == "av" else real(name))
    with pytest.raises(ModelDirError, match=r"av not installed: .*codeyard\[voice-local\]"):
        check(VoiceConfig(backend="local"))
