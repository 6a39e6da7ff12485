"""Which code index a repository gets: PostgreSQL full-text when Codeyard runs on PostgreSQL
(``codeindex.pg``: shared by every server and worker), else a SQLite FTS5 file beside the data
(``codeindex.index``, run in a thread). Both answer the same awaited calls."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.codeindex.index import CodeIndex, IndexStats, SearchHit
from codeyard.codeindex.pg import PgCodeIndex

if TYPE_CHECKING:  # numpy comes with the optional embeddings extra
    from codeyard.codeindex.embeddings import Embedder, LocalEmbedder

__all__ = ["AsyncIndex", "ThreadedIndex", "open_index", "shared_embedder"]


class AsyncIndex(Protocol):
    async def exists(self) -> bool: ...
    async def commit(self) -> str | None: ...
    async def update(self, repo: Path, commit: str) -> IndexStats: ...
    async def search(self, query: str, limit: int = 10) -> list[SearchHit]: ...
    async def texts(self, suffix: str) -> list[tuple[str, str]]: ...
    async def files(self) -> list[tuple[str, int, int]]: ...


class ThreadedIndex:
    """A SQLite FTS5 index file, its blocking calls run in a worker thread."""

    def __init__(self, path: Path, embedder: Embedder | None = None) -> None:
        self.local = CodeIndex(path, embedder)

    async def exists(self) -> bool:
        return self.local.exists()

    async def commit(self) -> str | None:
        return await anyio.to_thread.run_sync(self.local.commit)

    async def update(self, repo: Path, commit: str) -> IndexStats:
        return await anyio.to_thread.run_sync(self.local.update, repo, commit)

    async def search(self, query: str, limit: int = 10) -> list[SearchHit]:
        return await anyio.to_thread.run_sync(self.local.search, query, limit)

    async def texts(self, suffix: str) -> list[tuple[str, str]]:
        return await anyio.to_thread.run_sync(self.local.texts, suffix)

    async def files(self) -> list[tuple[str, int, int]]:
        return await anyio.to_thread.run_sync(self.local.files)


_shared: list[LocalEmbedder] = []
_shared_lock = threading.Lock()


def shared_embedder() -> LocalEmbedder:
    """One model per process (it takes ~0.7 s to load), made on first use."""
    from codeyard.codeindex.embeddings import LocalEmbedder  # numpy: only when turned on

    with _shared_lock:
        if not _shared:
            _shared.append(LocalEmbedder())
        return _shared[0]


def open_index(
    engine: AsyncEngine,
    data_dir: Path,
    repo_id: str,
    embeddings: bool = False,
    embedder: Embedder | None = None,
) -> AsyncIndex:
    """``embeddings``: hybrid search with local vectors (``codeindex.embeddings``);
    ``embedder``: hybrid search with that one (``services.code_index.embedder_for``)."""
    if embedder is None and embeddings:
        embedder = shared_embedder()
    if engine.dialect.name == "postgresql":
        return PgCodeIndex(engine, repo_id, embedder)
    return ThreadedIndex(data_dir / "index" / f"{repo_id}.sqlite", embedder)
