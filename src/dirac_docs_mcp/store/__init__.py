"""The index: chunks with dense + BM25 vectors and a manifest of indexed files.

``Store.open(settings)`` returns the embedded Qdrant Edge index (default, on disk at
``index_path``) or, when ``qdrant_url`` is set, a Qdrant server or cluster through
qdrant-client. Both implement :class:`Store`; the layout is described in :mod:`.base`.
"""

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
    check_model_ids,
    copy_index,
    file_point_id,
)
from .edge_store import EdgeStore
from .qdrant_client_store import QdrantClientStore

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
]
