"""Browsing files safely: a run's worktree on disk, a repository's commits through git.

Every user-given path is checked before anything is read: absolute paths, ``..`` escapes and
symlinks whose target lies outside the root are refused (``BadRequest`` → 400) with a sentence
saying which. Reads are capped (``PayloadTooLarge`` → 413 unless the caller asks for a
truncated read) and binary content is detected and sent as base64.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import posixpath
import stat
from pathlib import Path
from typing import Any

from codeyard.domain.errors import BadRequest, NotFound, PayloadTooLarge
from codeyard.workspace.git import git, resolve_commit

__all__ = [
    "MAX_DEPTH",
    "MAX_ENTRIES",
    "MAX_FILE_BYTES",
    "clean_relative",
    "list_tree",
    "read_file",
    "repo_blob",
    "repo_tree",
    "resolve_inside",
]

MAX_FILE_BYTES = 1024 * 1024
MAX_ENTRIES = 5000
MAX_DEPTH = 10
_SNIFF = 8192
_GIT_TYPES = {"tree": "dir", "blob": "file", "commit": "submodule"}


def clean_relative(user_path: str, where: str = "the worktree") -> str:
    """``user_path`` normalized (``/``-separated, no ``.``); refuses absolute paths and escapes."""
    if "\0" in user_path:
        raise BadRequest("The path contains a NUL byte.", path=user_path)
    if user_path.startswith("/"):
        raise BadRequest(
            f"Path '{user_path}' is absolute; give a path relative to {where}.", path=user_path
        )
    norm = posixpath.normpath(user_path) if user_path else "."
    if norm == ".." or norm.startswith("../"):
        raise BadRequest(f"Path '{user_path}' leads outside {where} ('..').", path=user_path)
    return "" if norm == "." else norm


def resolve_inside(root: Path, user_path: str) -> tuple[Path, str]:
    """The real path ``user_path`` names inside ``root`` and its canonical relative form.

    Symlinks are resolved component by component, as the OS would (so ``link/..`` means the
    link target's parent); a path that ends up outside ``root`` is refused like ``..`` is.
    """
    clean_relative(user_path)
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(real_root / user_path)) if user_path else real_root
    if real != real_root and real_root not in real.parents:
        raise BadRequest(
            f"Path '{user_path}' resolves through a symlink to outside the worktree; "
            "only files inside it can be browsed.",
            path=user_path,
        )
    return real, real.relative_to(real_root).as_posix() if real != real_root else ""


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "other"


def list_tree(root: Path, user_path: str = "", depth: int = 1) -> dict[str, Any]:
    """Entries under a directory of ``root``, ``depth`` levels down, symlinks not followed.

    Each entry is ``{path, type: file|dir|symlink|other, size}`` (``size`` for files only).
    ``.git`` is left out. At most ``MAX_ENTRIES`` entries (then ``truncated`` is true).
    """
    real, rel = resolve_inside(root, user_path)
    try:
        exists, is_dir = real.exists(), real.is_dir()
    except OSError as exc:  # e.g. a name too long for the file system
        raise BadRequest(
            f"'{user_path}' cannot be listed: {exc.strerror}.", path=user_path
        ) from None
    if not exists:
        raise NotFound(f"There is no '{user_path}' in the worktree.", path=user_path)
    if not is_dir:
        raise BadRequest(
            f"'{user_path}' is a file; read it with workspace/file?path={user_path}.",
            path=user_path,
        )
    depth = max(1, min(depth, MAX_DEPTH))
    entries: list[dict[str, Any]] = []
    truncated = _walk(real, rel, depth, entries)
    return {"path": rel, "depth": depth, "entries": entries, "truncated": truncated}


def _walk(directory: Path, rel: str, depth: int, out: list[dict[str, Any]]) -> bool:
    """Append entries in pre-order; True when the entry cap cut the listing short."""
    try:
        with os.scandir(directory) as it:
            items = sorted((e for e in it if e.name != ".git"), key=lambda e: e.name)
    except OSError:
        return False
    for entry in items:
        if len(out) >= MAX_ENTRIES:
            return True
        try:
            mode = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        kind = _kind(mode.st_mode)
        path = f"{rel}/{entry.name}" if rel else entry.name
        out.append({"path": path, "type": kind, "size": mode.st_size if kind == "file" else None})
        if kind == "dir" and depth > 1 and _walk(Path(entry.path), path, depth - 1, out):
            return True
    return False


def _content(data: bytes, truncated: bool) -> dict[str, Any]:
    """Text as UTF-8, anything else as base64 (a NUL byte or invalid UTF-8 means binary)."""
    text: str | None = None
    if b"\0" not in data[:_SNIFF]:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if truncated and exc.start >= len(data) - 3:  # a character cut by the size cap
                with contextlib.suppress(UnicodeDecodeError):
                    text = data[: exc.start].decode("utf-8")
    if text is not None:
        return {"binary": False, "encoding": "utf-8", "content": text}
    return {"binary": True, "encoding": "base64", "content": base64.b64encode(data).decode()}


def _too_large(user_path: str, size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"'{user_path}' is {size} bytes, more than the {limit} bytes the API sends; "
        "pass truncate=true for its beginning.",
        path=user_path,
        size=size,
        limit=limit,
    )


def read_file(
    root: Path, user_path: str, *, max_bytes: int = MAX_FILE_BYTES, truncate: bool = False
) -> dict[str, Any]:
    """A regular file inside ``root``: ``{path, size, binary, encoding, content, truncated}``."""
    if not clean_relative(user_path):
        raise BadRequest("Give the path of a file (path=…).", path=user_path)
    real, rel = resolve_inside(root, user_path)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK  # a FIFO must not block the server
    try:
        fd = os.open(real, flags)
    except FileNotFoundError:
        raise NotFound(f"There is no '{user_path}' in the worktree.", path=user_path) from None
    except OSError as exc:
        raise BadRequest(f"'{user_path}' cannot be read: {exc.strerror}.", path=user_path) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise BadRequest(
                f"'{user_path}' is a directory; list it with workspace?path={user_path}.",
                path=user_path,
            )
        if not stat.S_ISREG(info.st_mode):
            raise BadRequest(f"'{user_path}' is not a regular file.", path=user_path)
        if info.st_size > max_bytes and not truncate:
            raise _too_large(user_path, info.st_size, max_bytes)
        chunks: list[bytes] = []
        wanted = max_bytes + 1
        while wanted > 0 and (chunk := os.read(fd, min(wanted, 1 << 20))):
            chunks.append(chunk)
            wanted -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    truncated = len(data) > max_bytes
    data = data[:max_bytes]
    size = max(info.st_size, len(data))
    return {"path": rel, "size": size, "truncated": truncated, **_content(data, truncated)}


async def _commit(repo: Path, ref: str, repo_name: str) -> str:
    commit = await resolve_commit(repo, ref)
    if commit is None:
        raise BadRequest(
            f"ref '{ref}' does not name a commit in repository '{repo_name}'. "
            "Use a branch, tag or commit that exists there.",
            ref=ref,
        )
    return commit


async def _object_type(repo: Path, spec: str) -> str | None:
    result = await git("cat-file", "-t", spec, cwd=repo, check=False)
    return result.stdout if result.returncode == 0 else None


async def repo_tree(repo: Path, repo_name: str, ref: str, user_path: str = "") -> dict[str, Any]:
    """One directory of a commit: ``{ref, commit, path, entries:[{path, type, size}]}``."""
    commit = await _commit(repo, ref, repo_name)
    rel = clean_relative(user_path, "the repository")
    spec = f"{commit}:{rel}" if rel else f"{commit}^{{tree}}"
    kind = await _object_type(repo, spec)
    if kind is None:
        raise NotFound(f"There is no '{user_path}' at {ref}.", path=user_path, ref=ref)
    if kind != "tree":
        raise BadRequest(f"'{user_path}' is a file; read it with blob?path={user_path}.")
    listing = await git("ls-tree", "-l", "-z", spec, cwd=repo)
    entries = []
    for record in listing.stdout.split("\0"):
        if not record:
            continue
        meta, _, name = record.partition("\t")
        mode, otype, _oid, size = meta.split(maxsplit=3)
        kind = "symlink" if mode == "120000" else _GIT_TYPES.get(otype, "other")
        entries.append(
            {
                "path": f"{rel}/{name}" if rel else name,
                "type": kind,
                "size": int(size) if kind == "file" else None,
            }
        )
    return {"ref": ref, "commit": commit, "path": rel, "entries": entries}


async def repo_blob(
    repo: Path,
    repo_name: str,
    ref: str,
    user_path: str,
    *,
    max_bytes: int = MAX_FILE_BYTES,
    truncate: bool = False,
) -> dict[str, Any]:
    """One file of a commit, shaped like :func:`read_file` plus ``ref`` and ``commit``."""
    commit = await _commit(repo, ref, repo_name)
    rel = clean_relative(user_path, "the repository")
    if not rel:
        raise BadRequest("Give the path of a file (path=…).", path=user_path)
    spec = f"{commit}:{rel}"
    kind = await _object_type(repo, spec)
    if kind is None:
        raise NotFound(f"There is no '{user_path}' at {ref}.", path=user_path, ref=ref)
    if kind != "blob":
        raise BadRequest(f"'{user_path}' is a directory; list it with tree?path={user_path}.")
    size = int((await git("cat-file", "-s", spec, cwd=repo)).stdout)
    if size > max_bytes and not truncate:
        raise _too_large(user_path, size, max_bytes)
    data = await _git_bytes(repo, ("cat-file", "blob", spec), max_bytes)
    truncated = size > len(data)
    return {
        "ref": ref,
        "commit": commit,
        "path": rel,
        "size": size,
        "truncated": truncated,
        **_content(data, truncated),
    }


async def _git_bytes(repo: Path, args: tuple[str, ...], limit: int) -> bytes:
    """The first ``limit`` bytes git writes (binary-safe, unlike the text runner)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(LC_ALL="C", GIT_TERMINAL_PROMPT="0")
    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=repo,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    try:
        data = await proc.stdout.read(limit)
        while len(data) < limit and (more := await proc.stdout.read(limit - len(data))):
            data += more
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await proc.wait()
    return data
