"""The index: chunks with dense + BM25 vectors and a manifest of indexed files.

:func:`open_store` is the only place that names a back-end: the embedded Qdrant Edge index
(default, on disk at ``index_path``) or, when ``qdrant_url`` is set, a Qdrant server or
cluster through qdrant-client. Both implement :class:`Store` (:mod:`.base`); the layout
and the model checks are in :mod:`.meta`, the fusion maths in :mod:`.fusion`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import (
    DENSE,
    DENSE2,
    SPARSE,
    UPSERT_BATCH,
    ChunkRow,
    FileRecord,
    Store,
    StoredChunk,
    ancestor_dirs,
    copy_index,
    file_point_id,
)
from .edge_store import EdgeStore
from .meta import check_model_ids
from .qdrant_client_store import QdrantClientStore

if TYPE_CHECKING:
    from ..config import Settings


def open_store(settings: Settings) -> Store:
    """The index the settings point at: a Qdrant server when ``qdrant_url`` is set, else
    the embedded on-disk index at ``index_path``."""
    if settings.qdrant_url:
        return QdrantClientStore.connect(settings)
    return EdgeStore.open_path(settings.index_path, settings.collection)


__all__ = [
    "DENSE",
    "DENSE2",
    "SPARSE",
    "UPSERT_BATCH",
    "ChunkRow",
    "EdgeStore",
    "FileRecord",
    "QdrantClientStore",
    "Store",
    "StoredChunk",
    "ancestor_dirs",
    "check_model_ids",
    "copy_index",
    "file_point_id",
    "open_store",
]
