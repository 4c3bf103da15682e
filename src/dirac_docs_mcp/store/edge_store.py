"""The embedded index on Qdrant Edge: Qdrant's own engine (Rust) in this process.

On disk, under ``index_path``::

    .lock                    flock held by the process that has the index open
    <collection>/chunks/     EdgeShard: the chunk points (dense + bm25 vectors, payload)
    <collection>/files/      EdgeShard: the manifest and the meta point (no vectors)

One process at a time: :meth:`EdgeStore.open_path` takes an exclusive, non-blocking
``flock`` on ``.lock`` (the same file qdrant-client's embedded mode locked, so an older
version still running is detected too) and fails fast with :class:`IndexInUseError`.

Within the process every write (and open/close/drop) holds one lock; reads go straight to
the shard, which is safe to query while another thread updates it.

Durability: each update goes to the shard's write-ahead log first, so a killed process
loses nothing and a reopen replays the log. ``flush`` (segments to disk, fsync) costs tens
of milliseconds, so it runs at most every ``FLUSH_INTERVAL_S`` while indexing, at the end
of a run (``set_roots``), after deletes of whole files and on ``close``. A shard is created
in a temporary folder and renamed into place, so a half-created shard is never loaded.

Why one module of ~570 lines: every method is one Store operation translated to the Edge
API, and they share the lock, the flush clock and the shard handles; split by operation,
each piece would need all three and the file lock's lifecycle would be spread out. The
record shapes, the layout checks and the fusion maths already live in :mod:`.base`,
:mod:`.meta` and :mod:`.fusion`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

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
    in_use_error,
    named_dense,
    one_line,
    row_from_point,
)
from .fusion import fuse
from .meta import Dense2, check_meta, new_meta

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
CHUNKS_DIR = "chunks"
FILES_DIR = "files"
FLUSH_INTERVAL_S = 2.0
_SCROLL_PAGE = 1000
# qdrant-client's embedded mode kept ``meta.json`` and ``collection/<name>`` here
_LEGACY_META = "meta.json"
_LEGACY_DIR = "collection"


class EdgeStore(Store):
    def __init__(self, root: Path, collection: str, lock_fd: int):
        import qdrant_edge

        self._qe = qdrant_edge
        self.root = root
        self.collection = collection
        self.location = str(root)
        self.dir = root / collection
        self._lock_fd: int | None = lock_fd
        self._lock = threading.RLock()
        self._chunks: Any = None
        self._files: Any = None
        self._broken: str | None = None
        self._last_flush = time.monotonic()
        self._dirty = False
        self._load()

    # --- opening ------------------------------------------------------------------------
    @classmethod
    def open_path(cls, path: Path | str, collection: str) -> EdgeStore:
        root = Path(path).expanduser()
        try:
            root.mkdir(parents=True, exist_ok=True)
            fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open the index at {root}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise in_use_error(root) from None
        try:
            return cls(root, collection, fd)
        except BaseException:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise

    def _load(self) -> None:
        """Load the shards that are there; remember (not raise) why one cannot be."""
        for name in (CHUNKS_DIR, FILES_DIR):
            path = self.dir / name
            tmp = self.dir / (name + ".tmp")
            if tmp.exists():  # a create that never finished
                shutil.rmtree(tmp, ignore_errors=True)
            if not path.exists():
                continue
            try:
                shard = self._qe.EdgeShard.load(str(path))
            except Exception as exc:
                self._broken = f"cannot load {path}: {one_line(exc)}"
                log.error("%s", self._broken)
                continue
            if name == CHUNKS_DIR:
                self._chunks = shard
            else:
                self._files = shard
        if self._chunks is None and self._legacy_dirs():
            log.warning(
                "the index at %s was made by an older version (qdrant-client embedded mode); "
                "it is replaced on the next 'dirac-docs-mcp index'",
                self.root,
            )

    def close(self) -> None:
        with self._lock:
            for attr in ("_chunks", "_files"):
                shard = getattr(self, attr)
                setattr(self, attr, None)
                if shard is None:
                    continue
                try:
                    if self._dirty:
                        shard.flush()
                    shard.close()
                except Exception as exc:  # closing twice or a failed flush must not raise
                    log.warning("closing %s: %s", self.dir, one_line(exc))
            if self._lock_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._lock_fd)  # releases the flock
                self._lock_fd = None

    def flush(self) -> None:
        """Persist everything written so far (chunks before the manifest)."""
        with self._lock:
            for shard in (self._chunks, self._files):
                if shard is not None:
                    shard.flush()
            self._last_flush = time.monotonic()
            self._dirty = False

    def _maybe_flush(self) -> None:
        if self._dirty and time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S:
            self.flush()

    def optimize(self) -> bool:
        """Merge segments, drop deleted points and build HNSW indexes where a segment is
        big enough. Slow (minutes at 100k points on two cores); never called implicitly."""
        with self._lock:
            changed = False
            for shard in (self._chunks, self._files):
                if shard is not None:
                    changed |= bool(shard.optimize())
            self.flush()
            return changed

    # --- collections --------------------------------------------------------------------
    def _legacy_dirs(self) -> list[Path]:
        if not (self.root / _LEGACY_META).is_file():
            return []
        base = self.root / _LEGACY_DIR
        return [
            p for p in (base / self.collection, base / (self.collection + "__files")) if p.is_dir()
        ]

    def _remove_legacy(self) -> None:
        legacy = self._legacy_dirs()
        if not legacy:
            return
        log.warning("removing the old-format index of %s at %s", self.collection, self.root)
        for p in legacy:
            shutil.rmtree(p, ignore_errors=True)
        base = self.root / _LEGACY_DIR
        with contextlib.suppress(OSError):
            base.rmdir()  # only when no other collection is left in it
            (self.root / _LEGACY_META).unlink()

    def _check_readable(self) -> None:
        if self._broken:
            raise StoreError(
                f"the index at {self.root} is damaged ({self._broken}); rebuild it with "
                f"'dirac-docs-mcp index --rebuild PATH'"
            )
        if self._chunks is None and self._legacy_dirs():
            raise StoreError(
                f"the index at {self.root} was made by an older version of dirac-docs-mcp; "
                f"rebuild it with 'dirac-docs-mcp index --rebuild PATH'"
            )

    def exists(self) -> bool:
        self._check_readable()
        return self._chunks is not None

    def meta(self) -> dict[str, Any] | None:
        self._check_readable()
        files = self._files
        if files is None:
            return None
        found = self._retrieve(files, _META_ID)
        return dict(found) if found is not None else None

    def _retrieve(self, shard: Any, point_id: str) -> dict[str, Any] | None:
        try:
            found = shard.retrieve([point_id], with_payload=True, with_vector=False)
        except Exception as exc:
            raise StoreError(f"cannot read the index at {self.root}: {one_line(exc)}") from None
        return (found[0].payload or {}) if found else None

    def ensure_collection(self, model_id: str, dim: int, dense2: Dense2 | None = None) -> None:
        qe = self._qe
        with self._lock:
            if self._broken:
                self._check_readable()
            self._remove_legacy()
            meta = self.meta()
            if meta is not None and self._chunks is not None:
                check_meta(self.location, meta, model_id, dim, dense2)
                return
            # half an index (a crash while creating, or a folder deleted by hand): the
            # manifest and the points no longer vouch for each other, so start over
            self._drop_shards()
            self.dir.mkdir(parents=True, exist_ok=True)
            vectors = {
                DENSE: qe.EdgeVectorParams(
                    size=dim,
                    distance=qe.Distance.Cosine,
                    multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
                )
            }
            if dense2:
                vectors[DENSE2] = qe.EdgeVectorParams(size=dense2[1], distance=qe.Distance.Cosine)
            self._chunks = self._create(
                CHUNKS_DIR,
                qe.EdgeConfig(
                    vectors=vectors,
                    sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
                ),
                [
                    ("source", qe.PayloadSchemaType.Keyword),
                    ("dirs", qe.PayloadSchemaType.Keyword),
                    ("doc_set", qe.PayloadSchemaType.Keyword),
                    (
                        "section",
                        qe.TextIndexParams(tokenizer=qe.TokenizerType.Word, lowercase=True),
                    ),
                ],
            )
            # the manifest has no vectors; edge wants at least one vector name declared
            self._files = self._create(
                FILES_DIR,
                qe.EdgeConfig(sparse_vectors={"none": qe.EdgeSparseVectorParams()}),
                [("kind", qe.PayloadSchemaType.Keyword)],
            )
            self._write_meta(new_meta(model_id, dim, dense2))
            self.flush()

    def _create(self, name: str, config: Any, indexes: list[tuple[str, Any]]) -> Any:
        qe = self._qe
        tmp, path = self.dir / (name + ".tmp"), self.dir / name
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            shard = qe.EdgeShard.create(str(tmp), config)
            for field, schema in indexes:
                shard.update(qe.UpdateOperation.create_field_index(field, schema))
            shard.flush()
            shard.close()
            tmp.rename(path)
            return qe.EdgeShard.load(str(path))
        except Exception as exc:
            raise StoreError(f"cannot create the index at {path}: {one_line(exc)}") from None

    def _write_meta(self, payload: dict[str, Any]) -> None:
        qe = self._qe
        with self._lock:
            self._update(
                self._require_files(),
                qe.UpdateOperation.upsert_points([qe.Point(_META_ID, {}, payload)]),
            )

    def set_roots(self, roots: Sequence[str]) -> None:
        with self._lock:
            super().set_roots(roots)
            self.flush()  # the end of an indexing run

    def set_root_info(self, info: dict[str, dict[str, Any]]) -> None:
        with self._lock:
            super().set_root_info(info)
            self.flush()  # the end of an indexing run

    def _drop_shards(self) -> None:
        for attr in ("_chunks", "_files"):
            shard = getattr(self, attr)
            setattr(self, attr, None)
            if shard is not None:
                with contextlib.suppress(Exception):
                    shard.close()
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self._broken = None

    def drop(self) -> None:
        with self._lock:
            try:
                self._drop_shards()
            except OSError as exc:
                raise StoreError(f"cannot delete the index at {self.dir}: {exc}") from None
            self._remove_legacy()

    # --- manifest -----------------------------------------------------------------------
    def manifest(self) -> dict[str, FileRecord]:
        self._check_readable()
        files = self._files
        if files is None:
            return {}
        qe = self._qe
        only_files = qe.Filter(must=[qe.FieldCondition(key="kind", match=qe.MatchValue("file"))])
        records: dict[str, FileRecord] = {}
        for point in self._scroll(files, only_files, with_payload=True):
            record = FileRecord.from_payload(point.payload or {})
            records[record.source] = record
        return records

    def put_file(self, record: FileRecord) -> None:
        qe = self._qe
        with self._lock:
            self._update(
                self._require_files(),
                qe.UpdateOperation.upsert_points([qe.Point(record.point_id, {}, record.payload())]),
            )
            self._maybe_flush()

    def _delete_file_entry(self, record: FileRecord) -> None:
        qe = self._qe
        with self._lock:
            self._update(self._require_files(), qe.UpdateOperation.delete_points([record.point_id]))
            self._maybe_flush()

    # --- points -------------------------------------------------------------------------
    def upsert_chunks(self, rows: Sequence[ChunkRow]) -> None:
        qe = self._qe
        with self._lock:
            chunks = self._require_chunks()
            for start in range(0, len(rows), UPSERT_BATCH):
                points = [
                    qe.Point(
                        pid,
                        {
                            **named_dense(dense),
                            SPARSE: qe.SparseVector(as_list(idx), as_list(vals)),
                        },
                        payload,
                    )
                    for pid, payload, dense, (idx, vals) in rows[start : start + UPSERT_BATCH]
                ]
                self._update(chunks, qe.UpdateOperation.upsert_points(points))

    def set_chunk_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> None:
        ids = list(ids)
        with self._lock:
            if ids and self._chunks is not None:
                self._update(self._chunks, self._qe.UpdateOperation.set_payload(ids, payload))

    def delete_points(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        with self._lock:
            if ids and self._chunks is not None:
                self._update(self._chunks, self._qe.UpdateOperation.delete_points(ids))
        return len(ids)

    def delete_source_points(self, source: str, keep: Iterable[str] = ()) -> int:
        qe = self._qe
        keep = set(keep)
        flt = qe.Filter(
            must=[qe.FieldCondition(key="source", match=qe.MatchValue(source))],
            must_not=[qe.HasIdCondition(keep)] if keep else None,
        )
        return self._delete_matching(flt)

    def delete_orphans(self, sources: Iterable[str]) -> int:
        qe = self._qe
        known = list(sources)
        flt = (
            qe.Filter(must_not=[qe.FieldCondition(key="source", match=qe.MatchAny(known))])
            if known
            else qe.Filter()
        )
        n = self._delete_matching(flt)
        if n:
            self.flush()
        return n

    def _delete_matching(self, flt: Any) -> int:
        qe = self._qe
        with self._lock:
            chunks = self._chunks
            if chunks is None:
                return 0
            n = self._count(chunks, flt)
            if n:
                self._update(chunks, qe.UpdateOperation.delete_points_by_filter(flt))
            return n

    def count(self) -> int:
        self._check_readable()
        chunks = self._chunks
        return 0 if chunks is None else self._count(chunks, None)

    def chunks_of(self, source: str) -> list[StoredChunk]:
        self._check_readable()
        chunks = self._chunks
        if chunks is None:
            return []
        qe = self._qe
        flt = qe.Filter(must=[qe.FieldCondition(key="source", match=qe.MatchValue(source))])
        out = [
            StoredChunk.from_payload(p.id, p.payload or {})
            for p in self._scroll(chunks, flt, with_payload=True)
        ]
        return sorted(out, key=lambda c: c.position)

    def all_point_ids(self) -> set[str]:
        self._check_readable()
        chunks = self._chunks
        if chunks is None:
            return set()
        return {str(p.id) for p in self._scroll(chunks, None, with_payload=False)}

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
        """The retrievers run as one batch in edge; the lists are fused here with
        :func:`~.base.fuse` rather than by edge's own RRF, whose scores are the same but
        whose order of tied points changes from one process to the next."""
        self._check_readable()
        chunks = self._chunks
        if chunks is None:
            raise StoreError(
                f"no index at {self.location}; build one with 'dirac-docs-mcp index PATH'"
            )
        qe = self._qe
        conditions = []
        if source_prefix:
            conditions.append(qe.FieldCondition(key="dirs", match=qe.MatchValue(source_prefix)))
        if doc_set:
            conditions.append(qe.FieldCondition(key="doc_set", match=qe.MatchValue(doc_set)))
        if section:
            conditions.append(qe.FieldCondition(key="section", match=qe.MatchText(section)))
        flt = qe.Filter(must=conditions) if conditions else None
        indices, values = sparse
        queries = [qe.Query.Nearest(as_windows(dense), using=DENSE)]
        rrf_weights = [float(weights[0])]
        if indices:
            queries.append(
                qe.Query.Nearest(qe.SparseVector(as_list(indices), as_list(values)), using=SPARSE)
            )
            rrf_weights.append(float(weights[1]))
        if dense2 is not None:
            queries.append(qe.Query.Nearest(as_list(dense2), using=DENSE2))
            rrf_weights.append(float(weights[2]))
        batch = qe.QueryBatchRequest(
            [
                qe.QueryRequest(
                    limit=prefetch, query=q, filter=flt, with_payload=False, with_vector=False
                )
                for q in queries
            ]
        )
        try:
            results = chunks.query_batch(batch)
            scored = [[(str(p.id), float(p.score)) for p in points] for points in results]
            fused = fuse(scored, fusion, rrf_k, rrf_weights)[:limit]
            found = chunks.retrieve([pid for pid, _ in fused], with_payload=True, with_vector=False)
        except Exception as exc:
            raise StoreError(f"search failed on {self.location}: {one_line(exc)}") from None
        return in_fused_order(fused, found)

    def export_rows(self, batch_size: int = 256):
        batch: list[ChunkRow] = []
        for point in self._scroll(self._require_chunks(), None, True, with_vector=True):
            batch.append(row_from_point(point.id, point.payload, point.vector))
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def best_dense_score(self, dense: DenseInput) -> float | None:
        self._check_readable()
        if self._chunks is None:
            return None
        qe = self._qe
        request = qe.QueryRequest(
            limit=1,
            query=qe.Query.Nearest(as_windows(dense), using=DENSE),
            with_payload=False,
            with_vector=False,
        )
        try:
            points = self._chunks.query(request)
        except Exception as exc:
            raise StoreError(f"search failed on {self.location}: {one_line(exc)}") from None
        return float(points[0].score) if points else None

    # --- helpers ------------------------------------------------------------------------
    def _require_chunks(self) -> Any:
        self._check_readable()
        if self._chunks is None:
            raise StoreError(f"no index at {self.location}; call ensure_collection first")
        return self._chunks

    def _require_files(self) -> Any:
        self._check_readable()
        if self._files is None:
            raise StoreError(f"no index at {self.location}; call ensure_collection first")
        return self._files

    def _update(self, shard: Any, operation: Any) -> None:
        try:
            shard.update(operation)
        except Exception as exc:
            raise StoreError(f"cannot write the index at {self.root}: {one_line(exc)}") from None
        self._dirty = True

    def _count(self, shard: Any, flt: Any) -> int:
        try:
            return int(shard.count(self._qe.CountRequest(exact=True, filter=flt)))
        except Exception as exc:
            raise StoreError(f"cannot read the index at {self.root}: {one_line(exc)}") from None

    def _scroll(
        self, shard: Any, flt: Any, with_payload: bool, with_vector: bool = False
    ) -> Iterable[Any]:
        qe = self._qe
        offset = None
        while True:
            try:
                points, offset = shard.scroll(
                    qe.ScrollRequest(
                        offset=offset,
                        limit=_SCROLL_PAGE,
                        filter=flt,
                        with_payload=with_payload,
                        with_vector=with_vector,
                    )
                )
            except Exception as exc:
                raise StoreError(f"cannot read the index at {self.root}: {one_line(exc)}") from None
            yield from points
            if offset is None:
                return
