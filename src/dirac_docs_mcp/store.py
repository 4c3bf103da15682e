"""The index: one Qdrant collection of chunks plus a small manifest collection.

Layout (one place for it):

- ``<collection>``: one point per chunk, named vectors ``dense`` (cosine) and ``bm25``
  (sparse, IDF applied by Qdrant), payload ``text, source, section, breadcrumb, position,
  page, root, dirs`` with keyword indexes on ``source`` and ``dirs`` and a full-text index on
  ``section``.
- ``<collection>__files``: vectorless points, one per indexed file (``kind=file``: root,
  source, sha256, chunk ids) and one ``kind=meta`` point holding the embedding model id,
  its dimension and the indexed roots. A collection built with another model is refused.

The same code talks to the embedded on-disk mode (default) and to a server by URL.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Settings
from .errors import IndexInUseError, ModelMismatchError, StoreError

log = logging.getLogger(__name__)

DENSE = "dense"
SPARSE = "bm25"
_NAMESPACE = uuid.UUID("6f1c1d3e-8a52-4d47-9a55-2f0f5b1f3c11")
_META_ID = str(uuid.uuid5(_NAMESPACE, "__meta__"))
UPSERT_BATCH = 256


@dataclass
class FileRecord:
    root: str
    source: str
    sha256: str
    chunk_ids: list[str] = field(default_factory=list)

    @property
    def point_id(self) -> str:
        return file_point_id(self.source)


@dataclass
class StoredChunk:
    id: str
    text: str
    source: str
    section: str
    breadcrumb: list[str]
    position: int
    page: int | None
    root: str
    score: float = 0.0

    @classmethod
    def from_payload(
        cls, point_id: Any, payload: dict[str, Any], score: float = 0.0
    ) -> StoredChunk:
        return cls(
            id=str(point_id),
            text=payload.get("text", ""),
            source=payload.get("source", ""),
            section=payload.get("section", ""),
            breadcrumb=list(payload.get("breadcrumb", [])),
            position=int(payload.get("position", 0)),
            page=payload.get("page"),
            root=payload.get("root", ""),
            score=float(score),
        )


def file_point_id(source: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "file:" + source))


def ancestor_dirs(source: str) -> list[str]:
    """``a/b/c.rst`` -> ``["a", "a/b", "a/b/c.rst"]``: exact-match keys for prefix filters."""
    parts = source.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


class Store:
    """Open with :meth:`open`; use as a context manager or call :meth:`close`."""

    def __init__(self, client: Any, collection: str, location: str):
        from qdrant_client import models

        self._client = client
        self._m = models
        self.collection = collection
        self.files_collection = collection + "__files"
        self.location = location

    # --- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings) -> Store:
        from qdrant_client import QdrantClient

        if settings.qdrant_url:
            try:
                client = QdrantClient(
                    url=settings.qdrant_url,
                    api_key=settings.qdrant_api_key,
                    timeout=int(settings.qdrant_timeout_s),
                )
                client.get_collections()
            except Exception as exc:
                raise StoreError(
                    f"cannot reach Qdrant at {settings.qdrant_url}: {_one_line(exc)}"
                ) from None
            return cls(client, settings.collection, settings.qdrant_url)
        path = Path(settings.index_path)
        path.mkdir(parents=True, exist_ok=True)
        try:
            client = QdrantClient(path=str(path))
        except RuntimeError as exc:
            if "already accessed" in str(exc):
                raise IndexInUseError(
                    f"the index at {path} is in use by another process (a running "
                    f"'dirac-docs-mcp serve'?). Stop that process first, or run a Qdrant server "
                    f"and set DIRAC_MCP_QDRANT_URL so several processes can share one index"
                ) from None
            raise StoreError(f"cannot open the index at {path}: {_one_line(exc)}") from None
        except Exception as exc:
            raise StoreError(f"cannot open the index at {path}: {_one_line(exc)}") from None
        return cls(client, settings.collection, str(path))

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # closing twice or after a failed open is harmless
            pass

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- collections --------------------------------------------------------------------
    def exists(self) -> bool:
        return self._client.collection_exists(self.collection)

    def meta(self) -> dict[str, Any] | None:
        if not self._client.collection_exists(self.files_collection):
            return None
        found = self._client.retrieve(self.files_collection, [_META_ID], with_payload=True)
        return dict(found[0].payload) if found else None

    def ensure_collection(self, model_id: str, dim: int) -> None:
        """Create the collections, or check that an existing one used the same model."""
        m = self._m
        meta = self.meta()
        if meta is not None and self.exists():
            if meta.get("model_id") != model_id or int(meta.get("dim", 0)) != dim:
                raise ModelMismatchError(
                    f"the index at {self.location} was built with embedding model "
                    f"'{meta.get('model_id')}' ({meta.get('dim')}-d), not '{model_id}' ({dim}-d). "
                    f"Re-index from scratch with 'dirac-docs-mcp index --rebuild PATH', or use "
                    f"another collection (DIRAC_MCP_COLLECTION)"
                )
            return
        if not self.exists():
            self._client.create_collection(
                self.collection,
                vectors_config={DENSE: m.VectorParams(size=dim, distance=m.Distance.COSINE)},
                sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
            )
            self._client.create_payload_index(
                self.collection, "source", m.PayloadSchemaType.KEYWORD
            )
            self._client.create_payload_index(self.collection, "dirs", m.PayloadSchemaType.KEYWORD)
            self._client.create_payload_index(
                self.collection,
                "section",
                m.TextIndexParams(
                    type=m.TextIndexType.TEXT, tokenizer=m.TokenizerType.WORD, lowercase=True
                ),
            )
        if not self._client.collection_exists(self.files_collection):
            self._client.create_collection(self.files_collection, vectors_config={})
            self._client.create_payload_index(
                self.files_collection, "kind", m.PayloadSchemaType.KEYWORD
            )
        self._write_meta({"kind": "meta", "model_id": model_id, "dim": dim, "roots": []})

    def _write_meta(self, payload: dict[str, Any]) -> None:
        self._client.upsert(
            self.files_collection,
            [self._m.PointStruct(id=_META_ID, vector={}, payload=payload)],
            wait=True,
        )

    def set_roots(self, roots: Sequence[str]) -> None:
        meta = self.meta() or {"kind": "meta"}
        meta["roots"] = sorted(set(roots))
        self._write_meta(meta)

    def roots(self) -> list[str]:
        meta = self.meta()
        return list(meta.get("roots", [])) if meta else []

    def drop(self) -> None:
        for name in (self.collection, self.files_collection):
            if self._client.collection_exists(name):
                self._client.delete_collection(name)

    # --- manifest -----------------------------------------------------------------------
    def manifest(self) -> dict[str, FileRecord]:
        if not self._client.collection_exists(self.files_collection):
            return {}
        m = self._m
        records: dict[str, FileRecord] = {}
        offset = None
        only_files = m.Filter(must=[m.FieldCondition(key="kind", match=m.MatchValue(value="file"))])
        while True:
            points, offset = self._client.scroll(
                self.files_collection,
                scroll_filter=only_files,
                limit=1000,
                offset=offset,
                with_payload=True,
            )
            for p in points:
                pl = p.payload or {}
                records[pl["source"]] = FileRecord(
                    pl.get("root", ""),
                    pl["source"],
                    pl.get("sha256", ""),
                    list(pl.get("chunk_ids", [])),
                )
            if offset is None:
                return records

    def put_file(self, record: FileRecord) -> None:
        payload = {
            "kind": "file",
            "root": record.root,
            "source": record.source,
            "sha256": record.sha256,
            "chunk_ids": record.chunk_ids,
        }
        self._client.upsert(
            self.files_collection,
            [self._m.PointStruct(id=record.point_id, vector={}, payload=payload)],
            wait=True,
        )

    def delete_file(self, record: FileRecord) -> int:
        """Remove a file's chunks, then its manifest entry (in that order: a crash in
        between leaves an entry whose re-index cleans up)."""
        removed = self.delete_points(record.chunk_ids)
        removed += self.delete_source_points(record.source)
        self._client.delete(
            self.files_collection,
            points_selector=self._m.PointIdsList(points=[record.point_id]),
            wait=True,
        )
        return removed

    # --- points -------------------------------------------------------------------------
    def upsert_chunks(
        self,
        rows: Sequence[tuple[str, dict[str, Any], list[float], tuple[list[int], list[float]]]],
    ) -> None:
        """rows: (point id, payload, dense vector, (sparse indices, sparse values))."""
        m = self._m
        for start in range(0, len(rows), UPSERT_BATCH):
            points = [
                m.PointStruct(
                    id=pid,
                    payload=payload,
                    vector={DENSE: dense, SPARSE: m.SparseVector(indices=idx, values=vals)},
                )
                for pid, payload, dense, (idx, vals) in rows[start : start + UPSERT_BATCH]
            ]
            self._client.upsert(self.collection, points, wait=True)

    def delete_points(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        if ids and self.exists():
            self._client.delete(
                self.collection, points_selector=self._m.PointIdsList(points=ids), wait=True
            )
        return len(ids)

    def delete_source_points(self, source: str, keep: Iterable[str] = ()) -> int:
        """Delete a source's points other than ``keep`` (catches strays from a crashed run)."""
        if not self.exists():
            return 0
        m = self._m
        flt = m.Filter(
            must=[m.FieldCondition(key="source", match=m.MatchValue(value=source))],
            must_not=[m.HasIdCondition(has_id=list(keep))] if keep else None,
        )
        n = self._client.count(self.collection, count_filter=flt, exact=True).count
        if n:
            self._client.delete(
                self.collection, points_selector=m.FilterSelector(filter=flt), wait=True
            )
        return n

    def delete_orphans(self, sources: Iterable[str]) -> int:
        """Delete points whose source has no manifest entry (left by a killed run)."""
        if not self.exists():
            return 0
        m = self._m
        known = list(sources)
        flt = (
            m.Filter(must_not=[m.FieldCondition(key="source", match=m.MatchAny(any=known))])
            if known
            else None
        )
        n = self._client.count(self.collection, count_filter=flt, exact=True).count
        if n:
            selector = m.FilterSelector(filter=flt or m.Filter())
            self._client.delete(self.collection, points_selector=selector, wait=True)
        return n

    def count(self) -> int:
        if not self.exists():
            return 0
        return self._client.count(self.collection, exact=True).count

    def chunks_of(self, source: str) -> list[StoredChunk]:
        m = self._m
        flt = m.Filter(must=[m.FieldCondition(key="source", match=m.MatchValue(value=source))])
        out: list[StoredChunk] = []
        offset = None
        while True:
            points, offset = self._client.scroll(
                self.collection, scroll_filter=flt, limit=500, offset=offset, with_payload=True
            )
            out.extend(StoredChunk.from_payload(p.id, p.payload or {}) for p in points)
            if offset is None:
                return sorted(out, key=lambda c: c.position)

    def all_point_ids(self) -> set[str]:
        ids: set[str] = set()
        offset = None
        while self.exists():
            points, offset = self._client.scroll(
                self.collection, limit=2000, offset=offset, with_payload=False
            )
            ids.update(str(p.id) for p in points)
            if offset is None:
                break
        return ids

    # --- search -------------------------------------------------------------------------
    def hybrid_search(
        self,
        dense: list[float],
        sparse: tuple[list[int], list[float]],
        limit: int,
        prefetch: int,
        rrf_k: int,
        weights: tuple[float, float],
        source_prefix: str | None = None,
        section: str | None = None,
    ) -> list[StoredChunk]:
        """Dense and BM25 candidates fused by weighted reciprocal-rank fusion."""
        m = self._m
        conditions = []
        if source_prefix:
            conditions.append(m.FieldCondition(key="dirs", match=m.MatchValue(value=source_prefix)))
        if section:
            conditions.append(m.FieldCondition(key="section", match=m.MatchText(text=section)))
        flt = m.Filter(must=conditions) if conditions else None
        indices, values = sparse
        prefetches = [m.Prefetch(query=dense, using=DENSE, limit=prefetch, filter=flt)]
        rrf_weights = [weights[0]]
        if indices:
            prefetches.append(
                m.Prefetch(
                    query=m.SparseVector(indices=indices, values=values),
                    using=SPARSE,
                    limit=prefetch,
                    filter=flt,
                )
            )
            rrf_weights.append(weights[1])
        try:
            response = self._client.query_points(
                self.collection,
                prefetch=prefetches,
                query=m.RrfQuery(rrf=m.Rrf(k=rrf_k, weights=rrf_weights)),
                limit=limit,
                with_payload=True,
            )
        except Exception as exc:
            raise StoreError(f"search failed on {self.location}: {_one_line(exc)}") from None
        return [StoredChunk.from_payload(p.id, p.payload or {}, p.score) for p in response.points]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
