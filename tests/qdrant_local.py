"""A :class:`QdrantClientStore` on qdrant-client's embedded mode (pure Python, brute force),
for tests and benchmarks that need the client back-end without a Qdrant server. Test-only:
the product reaches a server by URL (``QdrantClientStore.connect``)."""

from __future__ import annotations

from pathlib import Path

from dirac_docs_mcp.errors import StoreError
from dirac_docs_mcp.store import QdrantClientStore
from dirac_docs_mcp.store.base import in_use_error, one_line


def open_local(path: Path | str, collection: str) -> QdrantClientStore:
    """qdrant-client's embedded mode at ``path``."""
    from qdrant_client import QdrantClient

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    try:
        client = QdrantClient(path=str(path))
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise in_use_error(path) from None
        raise StoreError(f"cannot open the index at {path}: {one_line(exc)}") from None
    except Exception as exc:
        raise StoreError(f"cannot open the index at {path}: {one_line(exc)}") from None
    return QdrantClientStore(client, collection, str(path))
