"""Voice transcription as a use case: the ``voice`` setting, the repository vocabulary that
biases recognition, and the call. The text goes back to the client's compose box: nothing is
ever typed into a terminal or sent to an agent from here."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from codeyard.auth.principal import Principal
from codeyard.crypto import secret_box
from codeyard.domain.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    PayloadTooLarge,
    ValidationFailed,
)
from codeyard.services import endpoint_settings
from codeyard.services.context import Services
from codeyard.store import env_sets, runs
from codeyard.voice import AudioError, TranscriptionError, VoiceConfig, transcriber
from codeyard.voice.config import MAX_AUDIO_BYTES
from codeyard.voice.local import ModelDirError
from codeyard.voice.local import check as check_local
from codeyard.workspace.git import GitError, git

KEY = "voice"
AUDIO_TYPES = ("audio/", "video/webm", "video/mp4", "application/octet-stream")
_SYMBOL = re.compile(
    r"^\s*(?:export\s+)?(?:async\s+)?(?:def|class|function|interface|type|const|struct|fn)\s+"
    r"([A-Za-z_][A-Za-z0-9_]{2,})",
    re.MULTILINE,
)
_SOURCE = (".py", ".ts", ".tsx", ".js", ".jsx", ".go", ".rs", ".java", ".kt", ".rb")


async def get_config(svc: Services) -> VoiceConfig | None:
    return await endpoint_settings.load(svc, KEY, VoiceConfig)


async def set_config(svc: Services, cfg: VoiceConfig | None) -> VoiceConfig | None:
    if cfg is not None and cfg.backend == "local":
        try:
            await asyncio.to_thread(check_local, cfg)
        except ModelDirError as exc:
            raise ValidationFailed(
                f"The local voice engine cannot start: {exc}.",
                errors=[{"loc": ["body", "config", "model_dir"], "msg": str(exc)}],
            ) from exc
    env_set_id = cfg.env_set_id if cfg is not None else None
    return await endpoint_settings.save(svc, KEY, cfg, env_set_id)


def _symbols(root: Path, files: list[str], budget: int = 200_000) -> list[str]:
    found: list[str] = []
    for name in files:
        if not name.endswith(_SOURCE) or budget <= 0:
            continue
        try:
            text = (root / name).read_text(errors="replace")[:50_000]
        except OSError:
            continue
        budget -= len(text)
        found += _SYMBOL.findall(text)
    return found


async def vocabulary(run: dict[str, Any]) -> list[str]:
    """Words this run's speaker is likely to say: the branch, changed files and the symbols
    they define, the provider."""
    words: list[str] = []
    if run.get("branch"):
        words.append(run["branch"])
        words += re.split(r"[/_-]+", run["branch"])
    for repo_id, path in (run.get("worktrees") or {}).items():
        root = Path(path)
        base = (run.get("base_commits") or {}).get(repo_id)
        try:
            changed = await git("diff", "--name-only", base or "HEAD", cwd=root, timeout=10)
            untracked = await git(
                "ls-files", "--others", "--exclude-standard", cwd=root, timeout=10
            )
        except (GitError, OSError):
            continue
        files = [f for f in f"{changed.stdout}\n{untracked.stdout}".splitlines() if f][:200]
        words += [Path(f).name for f in files] + [Path(f).stem for f in files]
        words += await asyncio.to_thread(_symbols, root, files)
    words.append(run.get("provider") or "")
    return [w for w in dict.fromkeys(words) if len(w) > 2]


async def transcribe(
    svc: Services,
    principal: Principal,
    audio: bytes,
    filename: str,
    content_type: str,
    run_ref: str | None,
) -> dict[str, Any]:
    if len(audio) > MAX_AUDIO_BYTES:
        raise PayloadTooLarge(f"Recordings are limited to {MAX_AUDIO_BYTES // (1024 * 1024)} MB.")
    if not audio:
        raise BadRequest("The audio file is empty.")
    if not content_type.startswith(AUDIO_TYPES):
        raise BadRequest(
            f"'{content_type}' is not audio: send a recording (webm, ogg, mp3, m4a, wav).",
            content_type=content_type,
        )
    cfg = await get_config(svc)
    if cfg is None:
        raise Conflict(
            "Voice is not configured: set a transcription endpoint with PUT /api/settings/voice."
        )
    words: list[str] = []
    if run_ref is not None:
        async with svc.engine.connect() as conn:
            run = await runs.get(conn, run_ref)
        if not principal.is_admin and not principal.owns(run["created_by"]):
            raise Forbidden("This run belongs to another user.")
        words = await vocabulary(run)
    key = None
    if cfg.backend == "openai" and cfg.env_set_id:
        async with svc.engine.connect() as conn:
            env = await env_sets.environment_for(
                conn, secret_box(svc.settings.secret_key_path), [cfg.env_set_id]
            )
        key = env.get(cfg.key_variable)
    try:
        text = await transcriber(cfg, key).transcribe(audio, filename, content_type, words)
    except AudioError as exc:
        raise BadRequest(f"The audio cannot be read: {exc}.") from exc
    except TranscriptionError as exc:
        raise Conflict(f"Transcription failed: {exc}") from exc
    return {"text": text, "vocabulary": words[:100]}
