"""Voice transcription: speech synthesized with espeak-ng (scripts/ensure-espeak.sh) sent
through ``POST /api/voice/transcribe`` to a fake OpenAI-compatible server over loopback, with
the run's vocabulary as the prompt and the key from an env set."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Api, make_repo
from tests.support.fake_transcribe import FakeTranscriber

pytestmark = pytest.mark.anyio


@pytest.fixture
def speech(tmp_path: Path) -> bytes:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: run scripts/ensure-espeak.sh")
    out = tmp_path / "speech.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(out), "run the tests for the billing module"], check=True
    )
    return out.read_bytes()


async def test_transcription_with_the_runs_vocabulary(
    sqlite_api: Api, tmp_path: Path, speech: bytes
) -> None:
    api = sqlite_api
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

    unconfigured = await api.post(
        "/api/voice/transcribe", files={"audio": ("a.wav", speech, "audio/wav")}
    )
    assert (
        unconfigured.status_code == 409 and "/api/settings/voice" in unconfigured.json()["detail"]
    )

    with FakeTranscriber(answer="run the tests for the billing module") as fake:
        env = await api.post(
            "/api/env-sets", json={"name": "stt", "variables": {"STT_KEY": "sk-stt"}}
        )
        config = {
            "base_url": fake.url,
            "model": "whisper-1",
            "env_set_id": env.json()["id"],
            "key_variable": "STT_KEY",
        }
        put = await api.client.put("/api/settings/voice", json={"config": config})
        assert put.status_code == 200, put.text

        resp = await api.post(
            "/api/voice/transcribe",
            files={"audio": ("dictation.wav", speech, "audio/wav")},
            data={"run_id": str(run["number"])},
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["text"] == "run the tests for the billing module"
        got = fake.requests[-1]
        assert got.audio == speech and got.seconds > 1.0  # the real recording, whole
        assert got.filename == "dictation.wav"
        assert got.authorization == "Bearer sk-stt" and got.fields["model"] == "whisper-1"
        prompt = got.fields["prompt"]
        assert "compute_invoice_total" in prompt and "invoice.py" in prompt
        assert run["branch"] in prompt if run.get("branch") else True

        not_audio = await api.post(
            "/api/voice/transcribe", files={"audio": ("x.txt", b"hello", "text/plain")}
        )
        assert not_audio.status_code == 400 and "not audio" in not_audio.json()["detail"]
        empty = await api.post(
            "/api/voice/transcribe", files={"audio": ("a.wav", b"", "audio/wav")}
        )
        assert empty.status_code == 400
        too_big = await api.post(
            "/api/voice/transcribe",
            files={"audio": ("big.wav", b"\0" * (25 * 1024 * 1024 + 10), "audio/wav")},
        )
        assert too_big.status_code == 413
        assert len(fake.requests) == 1  # nothing bad reached the backend
