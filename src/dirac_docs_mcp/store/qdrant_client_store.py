"""The index on a Qdrant server or cluster, by URL, through qdrant-client.

Tests and benchmarks also open it on qdrant-client's embedded mode (pure Python, brute
force) with ``tests/qdrant_local.py``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from .base import (
    _META_ID,
    DENSE,
    DENSE2,
    SPARSE,
    UPSERT_BATCH,
    ChunkRow,
    DenseInput,
    FileRecord,
    Store,
    StoredChunk,
    as_list,
    as_windows,
    in_fused_order,
    named_dense,
    one_line,
    row_from_point,
)
from .fusion import fuse
from .meta import Dense2, check_meta, new_meta

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger(__name__)


class QdrantClientStore(Store):
    def __init__(self, client: Any, collection: str, location: str):
        from qdrant_client import models

        self._client = client
        self._m = models
        self.collection = collection
        self.files_collection = collection + "__files"
        self.location = location
        self._write_lock = threading.RLock()

    # --- opening ------------------------------------------------------------------------
    @classmethod
    def connect(cls, settings: Settings) -> QdrantClientStore:
        from qdrant_client import QdrantClient

        try:
            client = QdrantClient(
                url=settings.qdrant_url,
                api_key=settings.qdrant_api_key,
                timeout=int(settings.qdrant_timeout_s),
            )
            client.get_collections()
        except Exception as exc:
            raise StoreError(
                f"cannot reach Qdrant at {settings.qdrant_url}: {one_line(exc)}"
            ) from None
        return cls(client, settings.collection, str(settings.qdrant_url))

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # closing twice or after a failed open is harmless
            pass

    # --- collections --------------------------------------------------------------------
    def exists(self) -> bool:
        return self._client.collection_exists(self.collection)

    def meta(self) -> dict[str, Any] | None:
        if not self._client.collection_exists(self.files_collection):
            return None
        found = self._client.retrieve(self.files_collection, [_META_ID], with_payload=True)
        return dict(found[0].payload) if found else None

    def ensure_collection(self, model_id: str, dim: int, dense2: Dense2 | None = None) -> None:
        m = self._m
        with self._write_lock:
            meta = self.meta()
            if meta is not None and self.exists():
                check_meta(self.location, meta, model_id, dim, dense2)
                return
            if not self.exists():
                vectors = {
                    DENSE: m.VectorParams(
                        size=dim,
                        distance=m.Distance.COSINE,
                        multivector_config=m.MultiVectorConfig(
                            comparator=m.MultiVectorComparator.MAX_SIM
                        ),
                    )
                }
                if dense2:
                    vectors[DENSE2] = m.VectorParams(size=dense2[1], distance=m.Distance.COSINE)
                self._client.create_collection(
                    self.collection,
                    vectors_config=vectors,
                    sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
                )
                self._client.create_payload_index(
                    self.collection, "source", m.PayloadSchemaType.KEYWORD
                )
                self._client.create_payload_index(
                    self.collection, "dirs", m.PayloadSchemaType.KEYWORD
                )
                self._client.create_payload_index(
                    self.collection, "doc_set", m.PayloadSchemaType.KEYWORD
                )
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
            self._write_meta(new_meta(model_id, dim, dense2))

    def _write_meta(self, payload: dict[str, Any]) -> None:
        with self._write_lock:
            self._client.upsert(
                self.files_collection,
                [self._m.PointStruct(id=_META_ID, vector={}, payload=payload)],
                wait=True,
            )

    def set_roots(self, roots: Sequence[str]) -> None:
        with self._write_lock:
            super().set_roots(roots)

    def set_root_info(self, info: dict[str, dict[str, Any]]) -> None:
        with self._write_lock:
            super().set_root_info(info)

    def drop(self) -> None:
        with self._write_lock:
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
                record = FileRecord.from_payload(p.payload or {})
                records[record.source] = record
            if offset is None:
                return records

    def put_file(self, record: FileRecord) -> None:
        with self._write_lock:
            self._client.upsert(
                self.files_collection,
                [self._m.PointStruct(id=record.point_id, vector={}, payload=record.payload())],
                wait=True,
            )

    def _delete_file_entry(self, record: FileRecord) -> None:
        with self._write_lock:
            self._client.delete(
                self.files_collection,
                points_selector=self._m.PointIdsList(points=[record.point_id]),
                wait=True,
            )

    # --- points -------------------------------------------------------------------------
    def upsert_chunks(self, rows: Sequence[ChunkRow]) -> None:
        m = self._m
        with self._write_lock:
            for start in range(0, len(rows), UPSERT_BATCH):
                points = [
                    m.PointStruct(
                        id=pid,
                        payload=payload,
                        vector={
                            **named_dense(dense),
                            SPARSE: m.SparseVector(indices=as_list(idx), values=as_list(vals)),
                        },
                    )
                    for pid, payload, dense, (idx, vals) in rows[start : start + UPSERT_BATCH]
                ]
                self._client.upsert(self.collection, points, wait=True)

    def set_chunk_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> None:
        ids = list(ids)
        with self._write_lock:
            if ids and self.exists():
                self._client.set_payload(self.collection, payload=payload, points=ids, wait=True)

    def delete_points(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        with self._write_lock:
            if ids and self.exists():
                self._client.delete(
                    self.collection, points_selector=self._m.PointIdsList(points=ids), wait=True
                )
        return len(ids)

    def delete_source_points(self, source: str, keep: Iterable[str] = ()) -> int:
        keep = list(keep)
        m = self._m
        with self._write_lock:
            if not self.exists():
                return 0
            flt = m.Filter(
                must=[m.FieldCondition(key="source", match=m.MatchValue(value=source))],
                must_not=[m.HasIdCondition(has_id=keep)] if keep else None,
            )
            n = self._client.count(self.collection, count_filter=flt, exact=True).count
            if n:
                self._client.delete(
                    self.collection, points_selector=m.FilterSelector(filter=flt), wait=True
                )
            return n

    def delete_orphans(self, sources: Iterable[str]) -> int:
        m = self._m
        known = list(sources)
        with self._write_lock:
            if not self.exists():
                return 0
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
        if not self.exists():
            return []
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
        dense: DenseInput,
        sparse: tuple[list[int], list[float]],
        limit: int,
        prefetch: int,
        rrf_k: int,
        weights: Sequence[float],
        source_prefix: str | None = None,
        section: str | None = None,
        dense2: Sequence[float] | None = None,
        fusion: str = "rrf",
        doc_set: str | None = None,
    ) -> list[StoredChunk]:
        """RRF runs inside Qdrant (prefetches + an RRF query); score fusion needs each
        list's scores, so its lists come back from one batch request and are fused here
        with the same :func:`~.base.fuse` as the embedded index."""
        m = self._m
        conditions = []
        if source_prefix:
            conditions.append(m.FieldCondition(key="dirs", match=m.MatchValue(value=source_prefix)))
        if doc_set:
            conditions.append(m.FieldCondition(key="doc_set", match=m.MatchValue(value=doc_set)))
        if section:
            conditions.append(m.FieldCondition(key="section", match=m.MatchText(text=section)))
        flt = m.Filter(must=conditions) if conditions else None
        indices, values = sparse
        prefetches = [m.Prefetch(query=as_windows(dense), using=DENSE, limit=prefetch, filter=flt)]
        rrf_weights = [weights[0]]
        if indices:
            prefetches.append(
                m.Prefetch(
                    query=m.SparseVector(indices=as_list(indices), values=as_list(values)),
                    using=SPARSE,
                    limit=prefetch,
                    filter=flt,
                )
            )
            rrf_weights.append(weights[1])
        if dense2 is not None:
            prefetches.append(
                m.Prefetch(query=as_list(dense2), using=DENSE2, limit=prefetch, filter=flt)
            )
            rrf_weights.append(weights[2])
        try:
            if fusion != "rrf":
                return self._fuse_here(prefetches, fusion, rrf_k, rrf_weights, limit)
            response = self._client.query_points(
                self.collection,
                prefetch=prefetches,
                query=m.RrfQuery(rrf=m.Rrf(k=rrf_k, weights=rrf_weights)),
                limit=limit,
                with_payload=True,
            )
        except Exception as exc:
            raise StoreError(f"search failed on {self.location}: {one_line(exc)}") from None
        return [StoredChunk.from_payload(p.id, p.payload or {}, p.score) for p in response.points]

    def _fuse_here(
        self, prefetches: list, fusion: str, rrf_k: int, weights: list[float], limit: int
    ) -> list[StoredChunk]:
        m = self._m
        requests = [
            m.QueryRequest(
                query=p.query, using=p.using, filter=p.filter, limit=p.limit, with_payload=False
            )
            for p in prefetches
        ]
        responses = self._client.query_batch_points(self.collection, requests)
        scored = [[(str(p.id), float(p.score)) for p in r.points] for r in responses]
        fused = fuse(scored, fusion, rrf_k, weights)[:limit]
        found = self._client.retrieve(self.collection, [pid for pid, _ in fused], with_payload=True)
        return in_fused_order(fused, found)

    def export_rows(self, batch_size: int = 256):
        offset = None
        while self.exists():
            points, offset = self._client.scroll(
                self.collection,
                limit=batch_size,
                offset=offset,
                with_payload=True,
                with_vectors=True,
            )
            rows = [row_from_point(p.id, p.payload, p.vector) for p in points]
            if rows:
                yield rows
            if offset is None:
                return

    def best_dense_score(self, dense: DenseInput) -> float | None:
        if not self.exists():
            return None
        try:
            response = self._client.query_points(
                self.collection, query=as_windows(dense), using=DENSE, limit=1, with_payload=False
            )
        except Exception as exc:
            raise StoreError(f"search failed on {self.location}: {one_line(exc)}") from None
        return float(response.points[0].score) if response.points else None
