"""Embeddings for the code index from a local model that needs no network: WordLlama's static
token embeddings (256 dimensions, 16 MB), whose weights and tokenizer ship inside the
``wordllama`` wheel (``pip install 'codeyard[embeddings]'``). Deterministic, CPU-only, about
a millisecond a file; it knows that "car" is near "automobile" and "postal letter" near
"smtp mail", which word matching cannot.

Turned on with ``CODEYARD_CODE_INDEX_EMBEDDINGS``; the index then stores one vector per file
and ``search`` fuses the lexical and the semantic rankings (reciprocal rank fusion).
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from codeyard.domain.errors import Conflict

__all__ = ["DIM", "Embedder", "EmbeddingsUnavailable", "LocalEmbedder", "fuse"]

DIM = 256
#: How much of a file is embedded (its path and split symbol names come first).
TEXT_CHARS = 4000
#: Reciprocal rank fusion's constant (the usual 60).
_RRF_K = 60


class EmbeddingsUnavailable(Conflict):
    """The ``embeddings`` extra is not installed."""


class Embedder(Protocol):
    """What the index needs: this ``LocalEmbedder`` or ``remote.RemoteEmbedder``."""

    def embed(self, texts: list[str]) -> np.ndarray: ...


class LocalEmbedder:
    """WordLlama loaded once, from the files in its own package (never downloaded)."""

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    package = importlib.import_module("wordllama")
                except ImportError as exc:
                    raise EmbeddingsUnavailable(
                        "Code index embeddings need the 'wordllama' package: pip install "
                        "'codeyard[embeddings]', or set CODEYARD_CODE_INDEX_EMBEDDINGS=false."
                    ) from exc
                # The wheel's own directory holds weights/ and tokenizers/ as the cache
                # layout expects; downloads are refused, so nothing is fetched at run time.
                self._model = package.WordLlama.load(
                    cache_dir=Path(str(package.__file__)).parent, disable_download=True
                )
            return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, one row per text (float32)."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        vectors = np.asarray(self._load().embed(texts, norm=True), dtype=np.float32)
        return vectors.reshape(len(texts), DIM)


def fuse(*rankings: list[str]) -> list[tuple[str, float]]:
    """Reciprocal rank fusion of ranked path lists: (path, score), best first."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, path in enumerate(ranking):
            scores[path] = scores.get(path, 0.0) + 1.0 / (_RRF_K + rank + 1)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))
