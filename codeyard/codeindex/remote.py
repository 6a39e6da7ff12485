"""Embeddings for the code index from a configured OpenAI-compatible endpoint
(``POST {base}/embeddings``, ``base`` like the utility model's: ``https://api.openai.com/v1``).

The second embedder next to ``LocalEmbedder``, chosen with ``CODEYARD_CODE_INDEX_EMBEDDER=openai``
for teams that want a larger model (or one they host) than the bundled WordLlama. Texts go out in
batches of ``BATCH`` (one request each); every vector is normalised here so cosine similarity
stays a dot product whatever the provider returns. Any failure (network, HTTP status, a body
that is not a list of vectors) raises ``EmbeddingsFailed``: the index catches it, logs a warning
and stays lexical, so a provider outage never breaks indexing or search.

The key is given by ``services.code_index.endpoint_key``: from an env set (encrypted at rest),
a named variable of the server's environment, or the plain setting, in that order. It is only
ever sent in the ``Authorization`` header: never logged, never part of an error message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy comes with the optional embeddings extra; httpx loads on first use
    import httpx
    import numpy as np

__all__ = ["BATCH", "EmbeddingsFailed", "RemoteEmbedder"]

#: Texts per request (OpenAI accepts up to 2048 inputs; smaller batches fail smaller).
BATCH = 64


class EmbeddingsFailed(Exception):
    """The endpoint did not answer with vectors; the index falls back to lexical search."""


class RemoteEmbedder:
    """One OpenAI-compatible embeddings endpoint; blocking (called from worker threads)."""

    def __init__(self, base_url: str, model: str, api_key: str = "", timeout: float = 30.0) -> None:
        self.url = base_url.rstrip("/") + "/embeddings"
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, one row per text (float32), fetched ``BATCH`` texts at a time."""
        import httpx  # not at import: `codeyard serve` starts without it (test_startup_imports)
        import numpy as np  # only with embeddings on

        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        rows: list[list[float]] = []
        with httpx.Client(timeout=self._timeout, headers=self._headers) as client:
            for start in range(0, len(texts), BATCH):
                rows.extend(self._batch(client, texts[start : start + BATCH]))
        try:
            matrix = np.asarray(rows, dtype=np.float32)
        except ValueError as exc:  # ragged rows
            raise EmbeddingsFailed(f"{self.url} answered vectors of different lengths") from exc
        if matrix.ndim != 2 or matrix.shape[1] == 0:
            raise EmbeddingsFailed(f"{self.url} answered no usable vectors")
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.where(norms == 0, 1.0, norms)

    def _batch(self, client: httpx.Client, texts: list[str]) -> list[list[float]]:
        import httpx

        try:
            resp = client.post(self.url, json={"model": self.model, "input": texts})
        except httpx.HTTPError as exc:
            raise EmbeddingsFailed(f"{self.url} unreachable: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise EmbeddingsFailed(f"{self.url} answered HTTP {resp.status_code}")
        try:
            data: Any = resp.json()["data"]
            ordered = sorted(data, key=lambda item: int(item["index"]))
            vectors = [[float(x) for x in item["embedding"]] for item in ordered]
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingsFailed(f"{self.url} answered no embeddings list") from exc
        if len(vectors) != len(texts):
            raise EmbeddingsFailed(
                f"{self.url} answered {len(vectors)} vectors for {len(texts)} texts"
            )
        return vectors
