"""One repository's lexical index: SQLite FTS5 over the files of one commit, updated by blob id.

``update`` lists the commit's tree (``git ls-tree -r -l``), reads only the blobs whose id
changed through one ``git cat-file --batch`` process, and rewrites those rows in one
transaction; a file whose blob is unchanged is not read at all, so re-indexing after a landed
run costs what the run changed. Binary files and files over ``MAX_FILE_BYTES`` are listed (for
the project map) but not indexed. Blocking by design (sqlite3 and git in this thread): callers
run it with ``anyio.to_thread``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from codeyard.codeindex.remote import EmbeddingsFailed
from codeyard.codeindex.tokens import match_expression, query_terms, symbol_terms

if TYPE_CHECKING:  # numpy comes with the optional embeddings extra
    from codeyard.codeindex.embeddings import Embedder

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 1_000_000
#: How much of a file's text is embedded (after its path and split symbol names).
EMBED_CHARS = 4000
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, blob TEXT NOT NULL, size INTEGER NOT NULL,
    lines INTEGER NOT NULL, docid INTEGER
);
CREATE VIRTUAL TABLE IF NOT EXISTS docs USING fts5(
    path UNINDEXED, body, symbols, tokenize = "unicode61 remove_diacritics 2 tokenchars '_'"
);
CREATE TABLE IF NOT EXISTS vectors (path TEXT PRIMARY KEY, vec BLOB NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class IndexStats:
    commit: str
    files: int
    indexed: int
    added: int
    changed: int
    removed: int
    seconds: float

    @property
    def files_per_second(self) -> float:
        touched = self.added + self.changed
        return touched / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class SearchHit:
    path: str
    score: float
    line: int
    snippet: str


def _git_env() -> dict[str, str]:
    """The environment without GIT_DIR and friends, so git finds the repository by ``cwd``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}


def tree_files(repo: Path, commit: str) -> dict[str, tuple[str, int]]:
    """path → (blob id, size) of every regular file in ``commit``."""
    out = subprocess.run(
        ["git", "ls-tree", "-r", "-l", "-z", commit],
        cwd=repo,
        env=_git_env(),
        capture_output=True,
        check=True,
    ).stdout
    files: dict[str, tuple[str, int]] = {}
    for entry in out.split(b"\0"):
        if not entry:
            continue
        meta, _, path = entry.partition(b"\t")
        mode, kind, blob, size = meta.split()
        if kind != b"blob" or mode == b"120000":  # symlinks are not content
            continue
        files[path.decode(errors="replace")] = (blob.decode(), int(size))
    return files


def blob_contents(repo: Path, ids: list[str]) -> Iterator[bytes]:
    """The contents of ``ids``, in order, from one ``git cat-file --batch`` process."""
    if not ids:
        return
    proc = subprocess.Popen(
        ["git", "cat-file", "--batch"],
        cwd=repo,
        env=_git_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdin = proc.stdin

    def feed() -> None:  # from a thread: git blocks writing objects until they are read
        with stdin:
            stdin.write("".join(f"{i}\n" for i in ids).encode())

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        for _ in ids:
            header = proc.stdout.readline().split()
            size = int(header[2])
            data = proc.stdout.read(size)
            proc.stdout.read(1)  # the newline after each object
            yield data
    finally:
        proc.stdout.close()
        proc.wait()
        feeder.join()


class CodeIndex:
    """The index file of one repository."""

    def __init__(self, path: Path, embedder: Embedder | None = None) -> None:
        self.path = path
        #: With one, each indexed file also gets a vector and ``search`` is hybrid.
        self.embedder = embedder

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path)
        conn.executescript(SCHEMA)
        return conn

    def exists(self) -> bool:
        return self.path.exists()

    def commit(self) -> str | None:
        if not self.exists():
            return None
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'commit'").fetchone()
        return str(row[0]) if row else None

    def update(self, repo: Path, commit: str) -> IndexStats:
        """Bring the index to ``commit`` (a full build the first time)."""
        started = time.perf_counter()
        tree = tree_files(repo, commit)
        with closing(self._connect()) as conn, conn:
            known = {p: (b, d) for p, b, d in conn.execute("SELECT path, blob, docid FROM files")}
            removed = [p for p in known if p not in tree]
            todo = [p for p, (blob, _) in tree.items() if known.get(p, ("", None))[0] != blob]
            # Rows leave the FTS table by rowid (a lookup by path would scan it).
            stale = [(known[p][1],) for p in [*removed, *todo] if p in known and known[p][1]]
            conn.executemany("DELETE FROM docs WHERE rowid = ?", stale)
            conn.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in removed])
            readable = [p for p in todo if tree[p][1] <= MAX_FILE_BYTES]
            contents = dict(
                zip(readable, blob_contents(repo, [tree[p][0] for p in readable]), strict=True)
            )
            rows = []
            for path in todo:
                blob, size = tree[path]
                data = contents.get(path)
                text = (
                    None if data is None or b"\0" in data[:8192] else data.decode(errors="replace")
                )
                docid = None
                if text is not None:
                    terms = f"{path.replace('/', ' ')} {symbol_terms(text)}"
                    cur = conn.execute(
                        "INSERT INTO docs (path, body, symbols) VALUES (?, ?, ?)",
                        (path, text, terms),
                    )
                    docid = cur.lastrowid
                rows.append((path, blob, size, line_count(text), docid))
            conn.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)", rows)
            gone = [(p,) for p in [*removed, *todo]]
            conn.executemany("DELETE FROM vectors WHERE path = ?", gone)
            if self.embedder is not None:
                try:
                    self._embed_missing(conn)
                except EmbeddingsFailed as exc:  # the next update embeds what is missing
                    log.warning("code index: embeddings failed, lexical only for now: %s", exc)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('commit', ?)", (commit,))
            indexed = conn.execute("SELECT count(*) FROM files WHERE docid IS NOT NULL").fetchone()[
                0
            ]
        added = sum(1 for p in todo if p not in known)
        return IndexStats(
            commit=commit,
            files=len(tree),
            indexed=int(indexed),
            added=added,
            changed=len(todo) - added,
            removed=len(removed),
            seconds=time.perf_counter() - started,
        )

    def _embed_missing(self, conn: sqlite3.Connection) -> None:
        """Vectors for the indexed files that have none (changed ones, or all of them when
        embeddings were turned on after the index was built)."""
        assert self.embedder is not None
        rows = conn.execute(
            "SELECT f.path, d.symbols, d.body FROM files f JOIN docs d ON d.rowid = f.docid "
            "WHERE f.docid IS NOT NULL AND f.path NOT IN (SELECT path FROM vectors)"
        ).fetchall()
        for start in range(0, len(rows), 256):
            chunk = rows[start : start + 256]
            texts = [f"{s}\n{b[:EMBED_CHARS]}" for _, s, b in chunk]
            vectors = self.embedder.embed(texts)
            conn.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                [(p, v.tobytes()) for (p, _, _), v in zip(chunk, vectors, strict=True)],
            )

    def search(self, query: str, limit: int = 10) -> list[SearchHit]:
        """Files ranked by BM25 (symbol parts and path weigh more than body text); with an
        embedder, fused with the files nearest in meaning (reciprocal rank fusion)."""
        expr = match_expression(query)
        if expr is None or not self.exists():
            return []
        terms = query_terms(query)
        with closing(self._connect()) as conn:
            rows = conn.execute(
                "SELECT path, bm25(docs, 0.0, 1.0, 2.0) AS score, body FROM docs "
                "WHERE docs MATCH ? ORDER BY score LIMIT ?",
                (expr, limit),
            ).fetchall()
            if self.embedder is None:
                return [best_hit(path, score, body, terms) for path, score, body in rows]
            try:
                near = self._nearest(conn, query, limit)
            except EmbeddingsFailed as exc:
                log.warning("code index: embeddings failed, searching words only: %s", exc)
                near = []
            fused = fuse_rankings([str(r[0]) for r in rows], near)[:limit]
            bodies = dict(
                conn.execute(
                    "SELECT f.path, d.body FROM files f JOIN docs d ON d.rowid = f.docid "
                    f"WHERE f.path IN ({','.join('?' * len(fused))})",
                    [p for p, _ in fused],
                ).fetchall()
            )
        # ``best_hit`` takes FTS5's scores, where lower is better.
        return [best_hit(p, -score, str(bodies[p]), terms) for p, score in fused if p in bodies]

    def _nearest(self, conn: sqlite3.Connection, query: str, limit: int) -> list[str]:
        assert self.embedder is not None
        from_db = conn.execute("SELECT path, vec FROM vectors").fetchall()
        if not from_db:
            return []
        return nearest_paths(self.embedder, query, from_db, limit)

    def texts(self, suffix: str) -> list[tuple[str, str]]:
        """(path, text) of the indexed files whose name ends with ``suffix``."""
        if not self.exists():
            return []
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT path, body FROM docs WHERE path LIKE ?", (f"%{suffix}",))
            return [(str(p), str(b)) for p, b in rows]

    def files(self) -> list[tuple[str, int, int]]:
        """(path, size, lines) of every file of the indexed commit."""
        if not self.exists():
            return []
        with closing(self._connect()) as conn:
            return list(conn.execute("SELECT path, size, lines FROM files ORDER BY path"))


def line_count(text: str | None) -> int:
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def best_hit(path: str, score: float, body: str, terms: list[str]) -> SearchHit:
    """The first line holding a term, with two lines of context on each side."""
    lines = body.splitlines()
    lowered = [ln.lower() for ln in lines]
    first = next((i for i, ln in enumerate(lowered) if any(t in ln for t in terms)), 0)
    lo, hi = max(0, first - 2), min(len(lines), first + 3)
    snippet = "\n".join(lines[lo:hi])[:1200]
    return SearchHit(path=path, score=-float(score), line=first + 1, snippet=snippet)


def fuse_rankings(lexical: list[str], near: list[str]) -> list[tuple[str, float]]:
    from codeyard.codeindex.embeddings import fuse  # numpy: only with embeddings on

    return fuse(lexical, near)


def nearest_paths(
    embedder: Embedder, query: str, rows: list[tuple[str, bytes]], limit: int
) -> list[str]:
    """The ``limit`` paths whose vectors are nearest the query's (cosine: unit vectors)."""
    import numpy as np  # only with embeddings on (the optional extra brings numpy)

    wanted = embedder.embed([query])[0]
    # Vectors of another embedder (the setting changed) are not comparable: skipped.
    same = [(p, v) for p, v in rows if len(v) == wanted.nbytes]
    if not same:
        return []
    matrix = np.frombuffer(b"".join(v for _, v in same), dtype=np.float32).reshape(len(same), -1)
    scores = matrix @ wanted
    rows = same
    order = np.argsort(-scores, kind="stable")[:limit]
    return [str(rows[int(i)][0]) for i in order]
