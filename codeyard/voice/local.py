"""The local engine: PocketSphinx (the ``voice-local`` extra), whose US English acoustic model,
dictionary and language model ship inside its wheel, so dictation works with no network and no
download. A user may point ``model_dir`` at another PocketSphinx model (another language, a
larger vocabulary).

Recognition runs in a child process (``python -m codeyard.voice.sphinx_worker``), not a thread:
PocketSphinx holds the GIL for the whole decode and loads a 27 MB language model per request,
which would stall the event loop (terminals, SSE) for hundreds of milliseconds; a child also
keeps a crash in FFmpeg's or PocketSphinx's C code away from the server, and is killed on
time-out or when the client goes away. At most :data:`MAX_JOBS` run at once per event loop;
later requests wait their turn.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import weakref
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from codeyard.voice.config import VoiceConfig
from codeyard.voice.transcribe import AudioError, TranscriptionError

#: Recognitions running at once (each takes one core while it decodes).
MAX_JOBS = max(1, min(2, os.cpu_count() or 1))
#: Exit status of the worker when the upload is not audio it can decode.
EXIT_BAD_AUDIO = 3
#: Words sent to the worker to bias recognition (it adds the pronounceable ones).
MAX_VOCABULARY = 300
EXTRA_HINT = "install the local engine: pip install 'codeyard[voice-local]'"

_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


class ModelDirError(ValueError):
    """``model_dir`` does not hold a usable PocketSphinx model; the message says what is
    missing."""


@dataclass(frozen=True)
class SphinxModel:
    """The three files PocketSphinx needs: acoustic model folder, dictionary, language model."""

    hmm: Path
    dictionary: Path
    lm: Path


def missing_modules() -> list[str]:
    """The extra's modules that cannot be imported here (found without importing them)."""
    return [name for name in ("pocketsphinx", "av") if find_spec(name) is None]


def bundled_model_dir() -> Path:
    """The US English model inside the pocketsphinx wheel."""
    spec = find_spec("pocketsphinx")
    if spec is None or not spec.submodule_search_locations:
        raise ModelDirError(f"PocketSphinx is not installed: {EXTRA_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "model" / "en-us"


def _pick(files: list[Path], what: str, where: Path) -> Path:
    # Phone-loop models (e.g. en-us-phone.lm.bin) sit beside the word model: not for dictation.
    words = sorted(f for f in files if "phone" not in f.name)
    if not words:
        raise ModelDirError(f"{where} has no {what}")
    return words[0]


def find_model(model_dir: str | None) -> SphinxModel:
    """Resolve a model directory laid out like CMU Sphinx's downloads: an acoustic model folder
    (the one holding ``mdef``; the directory itself or a child), a ``*.dict`` pronunciation
    dictionary and a ``*.lm.bin``/``*.lm``/``*.arpa`` language model."""
    root = Path(model_dir) if model_dir else bundled_model_dir()
    try:
        return _layout(root)
    except (OSError, ValueError) as exc:  # unreadable, name too long, NUL byte, ...
        if isinstance(exc, ModelDirError):
            raise
        raise ModelDirError(f"cannot read {root}: {type(exc).__name__}") from exc


def _layout(root: Path) -> SphinxModel:
    if not root.is_dir():
        raise ModelDirError(f"{root} is not a directory on the server")
    entries = sorted(root.iterdir())
    if (root / "mdef").is_file():
        hmm = root
    else:
        hmms = [e for e in entries if e.is_dir() and (e / "mdef").is_file()]
        if len(hmms) != 1:
            raise ModelDirError(
                f"{root} needs exactly one acoustic model folder (with an 'mdef' file), "
                f"found {len(hmms)}"
            )
        hmm = hmms[0]
    files = [e for e in entries if e.is_file()]
    dictionary = _pick([f for f in files if f.suffix == ".dict"], "*.dict dictionary", root)
    lm = _pick(
        [f for f in files if f.name.endswith((".lm.bin", ".lm", ".arpa", ".DMP"))],
        "*.lm.bin / *.lm / *.arpa language model",
        root,
    )
    return SphinxModel(hmm=hmm, dictionary=dictionary, lm=lm)


def check(cfg: VoiceConfig) -> SphinxModel:
    """What ``PUT /api/settings/voice`` checks before saving a local backend."""
    missing = missing_modules()
    if missing:
        raise ModelDirError(f"{', '.join(missing)} not installed: {EXTRA_HINT}")
    return find_model(cfg.model_dir)


def _slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slot = _slots.get(loop)
    if slot is None:
        slot = _slots[loop] = asyncio.Semaphore(MAX_JOBS)
    return slot


class LocalSphinx:
    """:class:`~codeyard.voice.transcribe.Transcriber` backed by the worker process."""

    def __init__(self, cfg: VoiceConfig) -> None:
        self._cfg = cfg

    def _command(self, model: SphinxModel, vocabulary: list[str]) -> list[str]:
        return [
            sys.executable,
            "-m",
            "codeyard.voice.sphinx_worker",
            "--hmm",
            str(model.hmm),
            "--dict",
            str(model.dictionary),
            "--lm",
            str(model.lm),
            "--vocabulary",
            json.dumps(vocabulary[:MAX_VOCABULARY]),
        ]

    async def transcribe(
        self, audio: bytes, filename: str, content_type: str, vocabulary: list[str]
    ) -> str:
        try:
            model = check(self._cfg)
        except ModelDirError as exc:
            raise TranscriptionError(str(exc)) from exc
        async with _slot():
            proc = await asyncio.create_subprocess_exec(
                *self._command(model, vocabulary),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                out, err = await asyncio.wait_for(
                    proc.communicate(audio), self._cfg.timeout_seconds
                )
            except TimeoutError as exc:
                raise TranscriptionError(
                    f"the local engine took longer than {self._cfg.timeout_seconds:g} s"
                ) from exc
            finally:
                if proc.returncode is None:  # timed out or the request was cancelled
                    proc.kill()
                    await proc.wait()
        reason = (err.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        if proc.returncode == EXIT_BAD_AUDIO:
            raise AudioError(reason)
        if proc.returncode != 0:
            raise TranscriptionError(f"the local engine failed ({proc.returncode}): {reason}")
        try:
            return str(json.loads(out)["text"]).strip()
        except (ValueError, KeyError, TypeError) as exc:
            raise TranscriptionError("the local engine answered no text") from exc
