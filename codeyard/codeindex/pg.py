"""The code index in PostgreSQL, for a Codeyard that runs on it: full-text search with a
``tsvector`` column and a GIN index, the same operations and ranking inputs as the SQLite FTS5
index (``codeindex.index``), shared by every server and worker of a cluster instead of a file
beside one of them.

Rows live in ``code_index_files`` / ``code_index_meta`` (migration 0020, PostgreSQL only),
keyed by repository id. ``update`` reads git in a thread (the same ``ls-tree`` and
``cat-file --batch`` as FTS5, only changed blobs) and writes the changed rows in one
transaction. The ``simple`` configuration keeps code words as they are (no stemming, no stop
words); the path and the split parts of compound identifiers (``tokens.symbol_terms``) weigh
more than body text, as in FTS5's BM25 weights.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.codeindex.index import (
    EMBED_CHARS,
    MAX_FILE_BYTES,
    IndexStats,
    SearchHit,
    best_hit,
    blob_contents,
    fuse_rankings,
    line_count,
    nearest_paths,
    tree_files,
)
from codeyard.codeindex.remote import EmbeddingsFailed
from codeyard.codeindex.tokens import query_terms, symbol_terms

if TYPE_CHECKING:  # numpy comes with the optional embeddings extra
    from codeyard.codeindex.embeddings import Embedder

log = logging.getLogger(__name__)

__all__ = ["TSV_BODY_CHARS", "PgCodeIndex"]

#: Body text beyond this is stored but not put in the ``tsvector`` (PostgreSQL caps one at
#: 1 MB of lexemes and positions at 16,383).
TSV_BODY_CHARS = 200_000
#: Rows written per statement.
_BATCH = 500
#: Rows changed by one update beyond which the table's planner statistics are refreshed.
_ANALYZE_AFTER = 200

#: What is not a word character: PostgreSQL's parser would read ``invoice.py`` or ``a.b`` as
#: one file or host token, where FTS5 (and a person searching) sees two words.
_NOT_WORD = re.compile(r"[^\w]+")

_UPSERT = text(
    """
    INSERT INTO code_index_files (repo_id, path, blob, size, lines, body, tsv)
    VALUES (:repo_id, :path, :blob, :size, :lines, :body,
        CASE WHEN CAST(:body AS text) IS NULL THEN NULL ELSE
            setweight(to_tsvector('simple', CAST(:terms AS text)), 'A')
            || setweight(to_tsvector('simple', CAST(:words AS text)), 'C') END)
    ON CONFLICT (repo_id, path) DO UPDATE SET
        blob = excluded.blob, size = excluded.size, lines = excluded.lines,
        body = excluded.body, tsv = excluded.tsv, vec = NULL
    """
)
_SEARCH = text(
    """
    SELECT path, ts_rank(tsv, q, 1) AS score, body
    FROM code_index_files, to_tsquery('simple', :query) AS q
    WHERE repo_id = :repo_id AND tsv @@ q
    ORDER BY score DESC, path LIMIT :limit
    """
)


def _decoded(data: bytes | None) -> str | None:
    """Text, or None for a file not indexed (too big, or binary); NUL bytes PostgreSQL's text
    cannot hold are dropped."""
    if data is None or b"\0" in data[:8192]:
        return None
    return data.decode(errors="replace").replace("\0", "")


def tsquery(query: str) -> str | None:
    """A ``to_tsquery`` expression matching any of the query's terms (None: nothing to find).
    Terms are letters, digits and ``_`` only (``tokens.query_terms``); each one is split the
    way the parser splits the indexed text, so ``get_user`` becomes ``(get <-> user)``."""
    alternatives = []
    for term in query_terms(query):
        words = [w for w in term.split("_") if w]
        if words:
            alternatives.append("(" + " <-> ".join(words) + ")" if len(words) > 1 else words[0])
    return " | ".join(dict.fromkeys(alternatives)) or None


class PgCodeIndex:
    """One repository's index in PostgreSQL (the async twin of ``index.CodeIndex``)."""

    def __init__(self, engine: AsyncEngine, repo_id: str, embedder: Embedder | None = None) -> None:
        self.engine = engine
        self.repo_id = repo_id
        #: With one, each indexed file also gets a vector (``vec``) and ``search`` is hybrid.
        self.embedder = embedder

    async def commit(self) -> str | None:
        async with self.engine.connect() as conn:
            found = await conn.execute(
                text("SELECT commit FROM code_index_meta WHERE repo_id = :r"), {"r": self.repo_id}
            )
            value = found.scalar()
        return str(value) if value is not None else None

    async def exists(self) -> bool:
        return await self.commit() is not None

    async def update(self, repo: Path, commit: str) -> IndexStats:
        """Bring the index to ``commit`` (a full build the first time)."""
        started = time.perf_counter()
        tree = await anyio.to_thread.run_sync(tree_files, repo, commit)
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT path, blob FROM code_index_files WHERE repo_id = :r"),
                {"r": self.repo_id},
            )
            known = {str(p): str(b) for p, b in rows}
        removed = [p for p in known if p not in tree]
        todo = [p for p, (blob, _) in tree.items() if known.get(p) != blob]
        readable = [p for p in todo if tree[p][1] <= MAX_FILE_BYTES]
        ids = [tree[p][0] for p in readable]
        data = await anyio.to_thread.run_sync(lambda: list(blob_contents(repo, ids)))
        contents = dict(zip(readable, data, strict=True))
        params: list[dict[str, Any]] = []
        for path in todo:
            body = _decoded(contents.get(path))
            terms = words = ""
            if body is not None:
                terms = _NOT_WORD.sub(" ", f"{path} {symbol_terms(body)}")
                words = _NOT_WORD.sub(" ", body[:TSV_BODY_CHARS])
            params.append(
                {
                    "repo_id": self.repo_id,
                    "path": path,
                    "blob": tree[path][0],
                    "size": tree[path][1],
                    "lines": line_count(body),
                    "body": body,
                    "terms": terms,
                    "words": words,
                }
            )
        async with self.engine.begin() as conn:
            if removed:
                await conn.execute(
                    text("DELETE FROM code_index_files WHERE repo_id = :r AND path = ANY(:paths)"),
                    {"r": self.repo_id, "paths": removed},
                )
            for start in range(0, len(params), _BATCH):
                await conn.execute(_UPSERT, params[start : start + _BATCH])
            await conn.execute(
                text(
                    "INSERT INTO code_index_meta (repo_id, commit) VALUES (:r, :c) "
                    "ON CONFLICT (repo_id) DO UPDATE SET commit = excluded.commit"
                ),
                {"r": self.repo_id, "c": commit},
            )
            counted = await conn.execute(
                text(
                    "SELECT count(*) FROM code_index_files WHERE repo_id = :r AND tsv IS NOT NULL"
                ),
                {"r": self.repo_id},
            )
            indexed = int(counted.scalar_one())
            if len(params) + len(removed) > _ANALYZE_AFTER:
                # Fresh statistics, or the planner may scan instead of using the GIN index.
                await conn.execute(text("ANALYZE code_index_files"))
        if self.embedder is not None:
            try:
                await self._embed_missing()
            except EmbeddingsFailed as exc:  # the next update embeds what is missing
                log.warning("code index: embeddings failed, lexical only for now: %s", exc)
        added = sum(1 for p in todo if p not in known)
        return IndexStats(
            commit=commit,
            files=len(tree),
            indexed=indexed,
            added=added,
            changed=len(todo) - added,
            removed=len(removed),
            seconds=time.perf_counter() - started,
        )

    async def _embed_missing(self) -> None:
        """Vectors for the indexed files that have none (changed ones, or all of them when
        embeddings were turned on after the index was built)."""
        embedder = self.embedder
        assert embedder is not None
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT path, body FROM code_index_files "
                    "WHERE repo_id = :r AND body IS NOT NULL AND vec IS NULL"
                ),
                {"r": self.repo_id},
            )
            todo = [(str(p), str(b)) for p, b in rows]
        for start in range(0, len(todo), 256):
            chunk = todo[start : start + 256]
            texts = [
                _NOT_WORD.sub(" ", f"{p} {symbol_terms(b)}") + "\n" + b[:EMBED_CHARS]
                for p, b in chunk
            ]
            vectors = await anyio.to_thread.run_sync(embedder.embed, texts)
            params = [
                {"r": self.repo_id, "p": p, "v": v.tobytes()}
                for (p, _), v in zip(chunk, vectors, strict=True)
            ]
            async with self.engine.begin() as conn:
                await conn.execute(
                    text("UPDATE code_index_files SET vec = :v WHERE repo_id = :r AND path = :p"),
                    params,
                )

    async def search(self, query: str, limit: int = 10) -> list[SearchHit]:
        """Files ranked by ``ts_rank`` (path and symbol parts weigh more than body text); with
        an embedder, fused with the files nearest in meaning (reciprocal rank fusion)."""
        expr = tsquery(query)
        if expr is None:
            return []
        terms = query_terms(query)
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                _SEARCH, {"query": expr, "repo_id": self.repo_id, "limit": limit}
            )
            found = [(str(p), float(s), str(b)) for p, s, b in rows]
            if self.embedder is None:
                # ``best_hit`` takes FTS5's scores, where lower is better.
                return [best_hit(path, -score, body, terms) for path, score, body in found]
            stored = await conn.execute(
                text(
                    "SELECT path, vec FROM code_index_files WHERE repo_id = :r AND vec IS NOT NULL"
                ),
                {"r": self.repo_id},
            )
            vectors = [(str(p), bytes(v)) for p, v in stored]
            near: list[str] = []
            if vectors:
                try:  # in a thread: a remote embedder blocks on the network
                    near = await anyio.to_thread.run_sync(
                        nearest_paths, self.embedder, query, vectors, limit
                    )
                except EmbeddingsFailed as exc:
                    log.warning("code index: embeddings failed, searching words only: %s", exc)
            fused = fuse_rankings([p for p, _, _ in found], near)[:limit]
            wanted = [p for p, _ in fused]
            bodies_rows = await conn.execute(
                text(
                    "SELECT path, body FROM code_index_files "
                    "WHERE repo_id = :r AND path = ANY(:paths)"
                ),
                {"r": self.repo_id, "paths": wanted},
            )
            bodies = {str(p): str(b) for p, b in bodies_rows}
        return [best_hit(p, -score, bodies[p], terms) for p, score in fused if p in bodies]

    async def texts(self, suffix: str) -> list[tuple[str, str]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT path, body FROM code_index_files "
                    "WHERE repo_id = :r AND body IS NOT NULL AND path LIKE :s"
                ),
                {"r": self.repo_id, "s": f"%{suffix}"},
            )
            return [(str(p), str(b)) for p, b in rows]

    async def files(self) -> list[tuple[str, int, int]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT path, size, lines FROM code_index_files WHERE repo_id = :r "
                    "ORDER BY path"
                ),
                {"r": self.repo_id},
            )
            return [(str(p), int(s), int(n)) for p, s, n in rows]
