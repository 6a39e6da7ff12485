"""Images in operator messages: the real Claude Code and Codex CLIs get them in the model
request of the next turn (against the fake model server); providers that do not take images
refuse them clearly, and bad images are refused before anything is stored."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from codeyard.testing.fake_llm import FakeLLM, Reply
from tests.clis import test_claude_code as claude
from tests.clis import test_codex as codex
from tests.clis.support import wait_model_calls
from tests.conftest import Api

pytestmark = pytest.mark.anyio
WAIT = 90.0


def png(width: int = 3, height: int = 2) -> bytes:
    """A real (tiny, red) PNG, built by hand so the test needs no image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


async def test_claude_code_receives_the_image(
    sqlite_api: Api, git_repo: Path, tmp_path: Path
) -> None:
    api = sqlite_api
    with FakeLLM() as fake:
        fake.script([Reply(text="First."), Reply(text="I see a red square.")])
        run = await claude.create(api, git_repo, claude.options(fake, tmp_path / "home"), "Hi")
        await api.wait_status(run["id"], "review", timeout=WAIT)
        image = png()
        body = {"text": "What is in this picture?", "images": [data_url(image)]}
        resp = await api.post(f"/api/runs/{run['id']}/messages", json=body)
        assert resp.status_code == 202, resp.text
        await wait_model_calls(fake, 2)
        done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
        assert done["status"] == "review", done
        sent = fake.model_calls("anthropic")[-1].body
    user = [m for m in sent["messages"] if m["role"] == "user"][-1]
    blocks = user["content"]
    images = [b for b in blocks if b.get("type") == "image"]
    assert images and images[0]["source"]["data"] == base64.b64encode(image).decode()
    assert images[0]["source"]["media_type"] == "image/png"
    assert any("What is in this picture?" in json.dumps(b) for b in blocks)


async def test_claude_code_receives_an_uploaded_image(
    sqlite_api: Api, git_repo: Path, tmp_path: Path
) -> None:
    """The multipart route: a file labelled octet-stream (as some browsers label a paste) is
    typed by its bytes and reaches the model like a data URL does."""
    api = sqlite_api
    with FakeLLM() as fake:
        fake.script([Reply(text="First."), Reply(text="A red square.")])
        run = await claude.create(api, git_repo, claude.options(fake, tmp_path / "home"), "Hi")
        await api.wait_status(run["id"], "review", timeout=WAIT)
        image = png(5, 5)
        resp = await api.client.post(
            f"/api/runs/{run['id']}/messages/upload",
            data={"text": "And this upload?"},
            files=[("images", ("paste", image, "application/octet-stream"))],
        )
        assert resp.status_code == 202, resp.text
        await wait_model_calls(fake, 2)
        done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
        assert done["status"] == "review", done
        sent = fake.model_calls("anthropic")[-1].body
    blocks = [m for m in sent["messages"] if m["role"] == "user"][-1]["content"]
    images = [b for b in blocks if b.get("type") == "image"]
    assert images and images[0]["source"]["data"] == base64.b64encode(image).decode()
    assert images[0]["source"]["media_type"] == "image/png"


async def test_uploads_are_checked_before_anything_is_stored(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    body = {
        "prompt": "go",
        "repo_path": str(git_repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": []}},
    }
    run = (await api.post("/api/runs", json=body)).json()
    await api.wait_status(run["id"], "review")
    url = f"/api/runs/{run['id']}/messages/upload"

    async def upload(files: list[tuple[str, bytes]], text: str = "x") -> Any:
        parts = [("images", (name, data, "image/png")) for name, data in files]
        return await api.client.post(url, data={"text": text}, files=parts or None)

    six = await upload([(f"{i}.png", png()) for i in range(6)])
    assert six.status_code == 422 and "At most 5" in six.json()["detail"]
    text_file = await upload([("a.png", b"not an image at all")])
    assert text_file.status_code == 422 and "not a PNG" in text_file.json()["detail"]
    huge = await upload([("big.png", png() + b"\0" * (5 * 1024 * 1024))])
    assert huge.status_code == 413
    refused = await upload([("a.png", png())])
    assert refused.status_code == 422 and "claude-code, codex" in refused.json()["detail"]
    assert not (api.services.settings.data_dir / "attachments" / run["id"]).exists()
    # Text alone works through the same route (a new turn of the script agent).
    plain = await api.client.post(url, data={"text": "hello there"})
    assert plain.status_code == 202, plain.text
    await api.wait_status(run["id"], "review")
    said = (await api.get(f"/api/runs/{run['id']}/events?types=user.message")).json()["data"]
    assert said[-1]["data"]["text"] == "hello there"


async def test_codex_receives_the_image(sqlite_api: Api, git_repo: Path, tmp_path: Path) -> None:
    api = sqlite_api
    with FakeLLM() as fake:
        fake.script([Reply(text="First."), Reply(text="A red square.")])
        run = await codex.create(api, git_repo, codex.options(fake, tmp_path / "home"), "Hi")
        await api.wait_status(run["id"], "review", timeout=WAIT)
        image = png(4, 4)
        body = {"text": "Describe it", "images": [data_url(image)]}
        resp = await api.post(f"/api/runs/{run['id']}/messages", json=body)
        assert resp.status_code == 202, resp.text
        await wait_model_calls(fake, 2)
        done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
        assert done["status"] == "review", done
        sent = json.dumps(fake.model_calls()[-1].body)
    assert base64.b64encode(image).decode() in sent and "Describe it" in sent


async def test_images_are_refused_where_they_cannot_go(sqlite_api: Api, git_repo: Path) -> None:
    api = sqlite_api
    body = {
        "prompt": "go",
        "repo_path": str(git_repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": []}},
    }
    run = (await api.post("/api/runs", json=body)).json()
    await api.wait_status(run["id"], "review")
    url = f"/api/runs/{run['id']}/messages"

    def problem(resp: Any, status: int, words: str) -> None:
        assert resp.status_code == status, resp.text
        assert words in resp.json()["detail"], resp.json()["detail"]

    image = data_url(png())
    problem(await api.post(url, json={"text": "x", "images": [image]}), 422, "claude-code, codex")
    # bad images are refused whatever the provider (checked before anything is stored)
    run_c = await claude.create(api, git_repo, {"cli_path": "/nonexistent"}, "x")
    await api.wait_status(run_c["id"], "failed", "review", timeout=WAIT)
    url_c = f"/api/runs/{run_c['id']}/messages"
    fake_png = "data:image/png;base64," + base64.b64encode(b"GIF89a....").decode()
    problem(await api.post(url_c, json={"text": "x", "images": [fake_png]}), 422, "not a image/png")
    problem(
        await api.post(url_c, json={"text": "x", "images": ["http://x/y.png"]}), 422, "data URL"
    )
    svg = "data:image/svg+xml;base64,PHN2Zz4="
    problem(await api.post(url_c, json={"text": "x", "images": [svg]}), 422, "not accepted")
    six = {"text": "x", "images": [image] * 6}
    assert (await api.post(url_c, json=six)).status_code == 422
    assert not (api.services.settings.data_dir / "attachments" / run_c["id"]).exists()
