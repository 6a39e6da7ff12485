"""A lexical code index per repository (SQLite FTS5, symbol-aware) and the project map.

The index is a derived cache kept beside the database (``<data dir>/index/<repo id>.sqlite``),
whatever database Codeyard itself runs on: it is rebuilt from git at any time, updated
incrementally by blob id, and never the source of truth.
"""

from codeyard.codeindex.index import CodeIndex, IndexStats, SearchHit

__all__ = ["CodeIndex", "IndexStats", "SearchHit"]
