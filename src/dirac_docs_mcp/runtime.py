"""Process-wide handles: settings, the index and the encoders, each opened on first use.

The server holds one Runtime for its life, so the MCP handshake never waits for a model
or the index; the CLI makes one per command.
"""

from __future__ import annotations

import threading

from .config import Settings
from .embeddings import Encoders
from .models import resolve_embedding_model
from .store import Store


class Runtime:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.RLock()
        self._store: Store | None = None
        self._encoders: Encoders | None = None

    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                self._store = Store.open(self.settings)
            return self._store

    @property
    def encoders(self) -> Encoders:
        with self._lock:
            if self._encoders is None:
                spec = resolve_embedding_model(
                    self.settings.embedding_model, self.settings.models_dir
                )
                self._encoders = Encoders(
                    spec,
                    self.settings.models_dir,
                    batch_size=self.settings.embedding_batch_size,
                    threads=self.settings.embedding_threads,
                )
            return self._encoders

    def best_dense_similarity(self, text: str) -> float | None:
        """Best cosine similarity between ``text`` and any chunk window of the index."""
        return self.store.best_dense_score(self.encoders.dense.embed_query(text))

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
