"""A lexical code index per repository (symbol-aware) and the project map.

The index is a derived cache: rebuilt from git at any time, updated incrementally by blob id,
never the source of truth. On SQLite it is a file beside the database
(``<data dir>/index/<repo id>.sqlite``, FTS5); on PostgreSQL it lives in the database
(``codeindex.pg``: ``tsvector`` + GIN), so every server and worker of a cluster shares it.
``codeindex.backends`` picks one.
"""

from codeyard.codeindex.index import CodeIndex, IndexStats, SearchHit

__all__ = ["CodeIndex", "IndexStats", "SearchHit"]
