"""Process-wide handles: settings, the index, the encoders and the generators, each opened
on first use and released by :meth:`Runtime.close`.

The server holds one Runtime for its life, so the MCP handshake never waits for a model
or the index; the CLI makes one per command.
"""

from __future__ import annotations

import threading

from .config import Settings
from .embeddings import Encoders
from .generator.base import Generator
from .models.embedding import resolve_dense2_model, resolve_embedding_model
from .models.registry import dense2_names_by_model_id
from .store import Store, check_model_ids, open_store


class Runtime:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.RLock()
        self._store: Store | None = None
        self._encoders: Encoders | None = None
        self._models_checked = False
        self._generators = None  # a GeneratorCache once a generator is asked for

    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                self._store = open_store(self.settings)
            return self._store

    @property
    def encoders(self) -> Encoders:
        with self._lock:
            if self._encoders is None:
                settings = self.settings
                spec = resolve_embedding_model(settings.embedding_model, settings.models_dir)
                dense2 = (
                    resolve_dense2_model(settings.dense2_model, settings.models_dir)
                    if settings.dense2_model
                    else None
                )
                self._encoders = Encoders(
                    spec,
                    settings.models_dir,
                    batch_size=settings.embedding_batch_size,
                    threads=settings.embedding_threads,
                    dense2_spec=dense2,
                    dense2_dtype=settings.dense2_dtype,
                )
            return self._encoders

    def generator(self, model_name: str | None = None) -> Generator:
        """The generator for ``model_name`` (default: the ``generator_model`` setting), with
        the other generator settings; loaded on first use, one per model for the runtime's
        life. ``generator_adapter`` belongs to ``generator_model``: another model (a judge)
        is loaded without it."""
        from .generator.transformers_backend import GeneratorCache

        settings = self.settings
        if model_name and model_name != settings.generator_model:
            settings = settings.model_copy(
                update={"generator_model": model_name, "generator_adapter": None}
            )
        with self._lock:
            if self._generators is None:
                self._generators = GeneratorCache()
            cache = self._generators
        return cache.get(settings)

    def check_index_models(self) -> None:
        """Refuse (once per process, :class:`ModelMismatchError`) to search an index built
        with other embedding models than the configured ones: the query vectors would not
        be comparable with the stored ones and the ranking would be silently wrong."""
        if self._models_checked:
            return
        meta = self.store.meta()
        if meta is not None:
            encoders = self.encoders
            dense2 = encoders.dense2_spec
            check_model_ids(
                self.store.location,
                meta,
                encoders.spec.model_id,
                dense2.model_id if dense2 else None,
                dense2_names_by_model_id(),
            )
        self._models_checked = True

    def best_dense_similarity(self, text: str) -> float | None:
        """Best cosine similarity between ``text`` and any chunk window of the index."""
        return self.store.best_dense_score(self.encoders.dense.embed_query(text))

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
            if self._generators is not None:
                self._generators.clear()
                self._generators = None

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
