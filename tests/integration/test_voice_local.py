"""The local voice engine end to end, with nothing faked: speech synthesized by flite
(scripts/ensure-espeak.sh installs it; PocketSphinx does not understand espeak-ng's formant
voice) goes through ``POST /api/voice/transcribe`` to PocketSphinx (the ``voice-local`` extra,
its bundled US English model) in a worker process, as WebM/Opus like a browser records it, and
the words come back. A run's symbol, spoken as words, comes back as the symbol itself only when
the run's vocabulary is given."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import anyio
import psutil
import pytest

from codeyard.voice import LocalSphinx, TranscriptionError, VoiceConfig
from codeyard.voice.local import MAX_JOBS
from tests.conftest import Api, make_repo
from tests.support.speech import as_webm

pytestmark = pytest.mark.anyio


def speak(tmp_path: Path, text: str) -> bytes:
    if shutil.which("flite") is None:
        pytest.fail("flite is missing: run scripts/ensure-espeak.sh")
    out = tmp_path / "speech.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(out)], check=True, timeout=30)
    return out.read_bytes()


async def test_local_engine_transcribes_and_knows_the_runs_symbols(
    sqlite_api: Api, tmp_path: Path
) -> None:
    api = sqlite_api
    bad = await api.client.put(
        "/api/settings/voice",
        json={"config": {"backend": "local", "model_dir": str(tmp_path / "no-model")}},
    )
    assert bad.status_code == 422 and "not a directory" in bad.json()["detail"], bad.text
    assert (await api.client.get("/api/settings/voice")).json()["config"] is None

    put = await api.client.put("/api/settings/voice", json={"config": {"backend": "local"}})
    assert put.status_code == 200, put.text

    webm = as_webm(speak(tmp_path, "run the tests again"))
    plain = await api.post(
        "/api/voice/transcribe", files={"audio": ("dictation.webm", webm, "audio/webm")}
    )
    assert plain.status_code == 200, plain.text
    assert plain.json()["text"] == "run the tests again", plain.json()

    repo = make_repo(tmp_path / "shop", {"README.md": "# shop\n"})
    body = {
        "prompt": "billing",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {
            "scenario": {
                "steps": [
                    {
                        "write": {
                            "path": "billing/invoice.py",
                            "content": "def compute_invoice_total(x):\n    return x\n",
                        }
                    }
                ]
            }
        },
    }
    run = (await api.post("/api/runs", json=body)).json()
    await api.wait_status(run["id"], "review")
    clip = speak(tmp_path, "fix compute invoice total")
    symbol = await api.post(
        "/api/voice/transcribe",
        files={"audio": ("dictation.wav", clip, "audio/wav")},
        data={"run_id": str(run["number"])},
    )
    assert symbol.status_code == 200, symbol.text
    assert symbol.json()["text"] == "fix compute_invoice_total", symbol.json()
    assert "compute_invoice_total" in symbol.json()["vocabulary"]
    unbiased = await api.post(
        "/api/voice/transcribe", files={"audio": ("dictation.wav", clip, "audio/wav")}
    )
    assert unbiased.status_code == 200, unbiased.text
    assert "compute_invoice_total" not in unbiased.json()["text"], unbiased.json()

    garbage = await api.post(
        "/api/voice/transcribe", files={"audio": ("a.webm", b"\x1aE\xdf\xa3 not", "audio/webm")}
    )
    assert garbage.status_code == 400 and "cannot be read" in garbage.json()["detail"]


async def test_workers_are_bounded_and_killed_on_time_out(tmp_path: Path) -> None:
    """Three dictations at once run at most MAX_JOBS worker processes; one past its time limit
    loses its worker (killed and reaped), and the caller gets the reason."""
    clip = speak(tmp_path, "run the tests again")
    engine = LocalSphinx(VoiceConfig(backend="local"))
    me = psutil.Process()
    most = 0

    def workers() -> list[psutil.Process]:
        found = []
        for child in me.children(recursive=True):
            try:
                if "codeyard.voice.sphinx_worker" in child.cmdline():
                    found.append(child)
            except psutil.Error:
                continue  # exited between listing and reading
        return found

    async def watch() -> None:
        nonlocal most
        while True:
            most = max(most, len(workers()))
            await anyio.sleep(0.02)

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        with anyio.fail_after(120):
            texts = await asyncio.gather(
                *(engine.transcribe(clip, "a.wav", "audio/wav", []) for _ in range(3))
            )
        tg.cancel_scope.cancel()
    assert texts == ["run the tests again"] * 3
    assert 1 <= most <= MAX_JOBS

    hurried = LocalSphinx(VoiceConfig(backend="local", timeout_seconds=0.05))
    with anyio.fail_after(30), pytest.raises(TranscriptionError, match=r"longer than 0\.05 s"):
        await hurried.transcribe(clip, "a.wav", "audio/wav", [])
    assert workers() == []

    # A model directory that looks right but is not a model: the engine's own reason comes back.
    (tmp_path / "junk" / "acoustic").mkdir(parents=True)
    (tmp_path / "junk" / "acoustic" / "mdef").write_text("junk\n")
    (tmp_path / "junk" / "x.dict").write_text("hello HH AH L OW\n")
    (tmp_path / "junk" / "x.lm").write_text("junk\n")
    broken = LocalSphinx(VoiceConfig(backend="local", model_dir=str(tmp_path / "junk")))
    with anyio.fail_after(30), pytest.raises(TranscriptionError, match="mdef"):
        await broken.transcribe(clip, "a.wav", "audio/wav", [])
