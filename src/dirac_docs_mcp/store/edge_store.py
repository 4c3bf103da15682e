"""The embedded index on Qdrant Edge: Qdrant's own engine (Rust) in this process.

On disk, under ``index_path``::

    .lock                    flock held by the process that has the index open
    <collection>/chunks/     EdgeShard: the chunk points (dense + bm25 vectors, payload)
    <collection>/files/      EdgeShard: the manifest and the meta point (no vectors)
    <collection>/integrity.json  size and sha256 of every shard file, written when an
                             index run ends (removed by its first write)
    <collection>.rebuild/    an ``index --rebuild`` in progress, renamed into place at its end

Damage: opening compares every shard file's size with ``integrity.json`` (cheap: finds a
truncated or missing file); :meth:`EdgeStore.verify` (``status``, the start of an index
run) also re-hashes all of them and checks the manifest against the points. A damaged index, or an
engine error while reading, is an :class:`~dirac_docs_mcp.errors.IndexDamagedError` whose
message says to run ``index --rebuild``. The write-ahead logs and the ``*_journal.dat``
files change on every open, so they are not hashed.

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

Why one module of ~780 lines: every method is one Store operation translated to the Edge
API, and they share the lock, the flush clock and the shard handles; split by operation,
each piece would need all three and the file lock's lifecycle would be spread out. The
record shapes, the layout checks and the fusion maths already live in :mod:`.base`,
:mod:`.meta` and :mod:`.fusion`. The seal (integrity.json) and the rebuild-beside-and-swap
code (about 200 lines at the end) could move to a module of their own; they stay here while
they share the shard handles' open/close order.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
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
    check_manifest_points,
    damaged_error,
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
SEAL_FILE = "integrity.json"
REBUILD_SUFFIX = ".rebuild"
OLD_SUFFIX = ".old"
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
        self._live_dir = self.dir  # where the index is served from; self.dir while rebuilding
        self._seal_pending = False  # an index run ended: seal the files once they are closed
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
        self._recover_rebuild()
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
        if self._broken is None:
            problem = check_seal(self.dir, full=False)
            if problem:
                self._broken = problem
                log.debug("the index at %s is damaged: %s", self.root, problem)
        if self._chunks is None and self._legacy_dirs():
            log.warning(
                "the index at %s was made by an older version (qdrant-client embedded mode); "
                "it is replaced on the next 'dirac-docs-mcp index'",
                self.root,
            )

    def _close_shards(self) -> None:
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
        self._dirty = False
        if self._seal_pending:
            self._seal_pending = False
            try:
                write_seal(self.dir)
            except OSError as exc:
                log.warning("cannot write %s: %s", self.dir / SEAL_FILE, exc)

    def close(self) -> None:
        with self._lock:
            self._close_shards()
            if self.dir != self._live_dir:  # a rebuild that did not finish: the old stays
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = self._live_dir
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
                    self._unseal()
                    changed |= bool(shard.optimize())
            self.flush()
            self._seal_pending = True
            return changed

    # --- damage and rebuild -------------------------------------------------------------
    def _unseal(self) -> None:
        """The files are about to change: their checksums no longer vouch for them (a run
        killed from here on leaves an index that is checked by its manifest only)."""
        self._seal_pending = False
        with contextlib.suppress(FileNotFoundError):
            (self.dir / SEAL_FILE).unlink()

    def verify(self) -> None:
        """Every shard file against ``integrity.json`` (sha256), then the manifest against
        the points, reading every point's payload once."""
        self._check_readable()
        problem = check_seal(self.dir, full=True)
        if problem:
            raise damaged_error(self.root, problem)
        if (self.dir / SEAL_FILE).exists():  # the last run completed
            check_manifest_points(self)
        if self._chunks is not None:
            for _ in self._scroll(self._chunks, None, with_payload=True):
                pass

    def _recover_rebuild(self) -> None:
        """Undo what a process killed during ``index --rebuild`` left: a half-built index
        beside the old one is removed; an old index moved aside for the swap comes back."""
        live = self._live_dir
        rebuild, old = _sibling(live, REBUILD_SUFFIX), _sibling(live, OLD_SUFFIX)
        if old.exists():
            if live.exists():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.rename(live)
        if rebuild.exists():
            shutil.rmtree(rebuild, ignore_errors=True)

    def begin_rebuild(self) -> None:
        """Build the new index in ``<collection>.rebuild`` beside the old one, which stays
        as it is (and readable by the next process) until :meth:`finish_rebuild`."""
        with self._lock:
            self._close_shards()
            self._broken = None
            self.dir = _sibling(self._live_dir, REBUILD_SUFFIX)
            shutil.rmtree(self.dir, ignore_errors=True)

    def finish_rebuild(self) -> None:
        """Seal the new index and put it in place of the old one: the old one is renamed
        aside, the new one renamed into place, the old one removed (a crash between the two
        renames is undone by the next open)."""
        with self._lock:
            new, live = self.dir, self._live_dir
            if new == live:
                return
            self.flush()
            self._seal_pending = True
            self._close_shards()
            old = _sibling(live, OLD_SUFFIX)
            try:
                shutil.rmtree(old, ignore_errors=True)
                if live.exists():
                    live.rename(old)
                new.rename(live)
            except OSError as exc:
                raise StoreError(
                    f"cannot put the rebuilt index in place at {live}: {exc}"
                ) from None
            self.dir = live
            shutil.rmtree(old, ignore_errors=True)
            self._broken = None
            self._load()

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
            raise damaged_error(self.root, self._broken)
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
            raise damaged_error(self.root, f"cannot read it: {one_line(exc)}") from None
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
                self.verify()  # an index run on a damaged index would call it unchanged
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
            self._seal_pending = True  # sealed once the shards are closed

    def set_root_info(self, info: dict[str, dict[str, Any]]) -> None:
        with self._lock:
            super().set_root_info(info)
            self.flush()  # the end of an indexing run
            self._seal_pending = True  # sealed once the shards are closed

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
        self._seal_pending = False

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
            raise damaged_error(self.location, f"search failed: {one_line(exc)}") from None
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
            raise damaged_error(self.location, f"search failed: {one_line(exc)}") from None
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
        if not self._dirty:
            self._unseal()
        try:
            shard.update(operation)
        except Exception as exc:
            raise StoreError(f"cannot write the index at {self.root}: {one_line(exc)}") from None
        self._dirty = True

    def _count(self, shard: Any, flt: Any) -> int:
        try:
            return int(shard.count(self._qe.CountRequest(exact=True, filter=flt)))
        except Exception as exc:
            raise damaged_error(self.root, f"cannot read it: {one_line(exc)}") from None

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
                raise damaged_error(self.root, f"cannot read it: {one_line(exc)}") from None
            yield from points
            if offset is None:
                return


# --- checksums of the shard files -------------------------------------------------------------
def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _sealed_files(folder: Path) -> dict[str, Path]:
    """The shard files an index run writes, by path relative to ``folder``: not the
    write-ahead logs, the ``*_journal.dat`` files nor the engine's JSON state (the engine
    rewrites or removes those on its own)."""
    out: dict[str, Path] = {}
    for shard in (CHUNKS_DIR, FILES_DIR):
        base = folder / shard
        for dirpath, _dirnames, filenames in os.walk(base):
            rel_dir = Path(dirpath).relative_to(folder)
            if rel_dir.parts[1:2] == ("wal",):
                continue
            for name in filenames:
                # segment.json (and the engine's other JSON state) is rewritten by the
                # engine after a run's last write: seen changing on the EmbeddingGemma
                # index between the seal and the next status (a false "damaged")
                if not name.endswith(("_journal.dat", ".json")):
                    out[(rel_dir / name).as_posix()] = Path(dirpath) / name
    return out


def _size_only(rel: str) -> bool:
    """Opening a shard replays its write-ahead log, which rewrites the point versions: their
    size is checked, not their content."""
    return rel.endswith("mutable_id_tracker.versions")


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_seal(folder: Path) -> None:
    """Record size and sha256 of every shard file an index run writes in ``integrity.json``."""
    files = {}
    for rel, path in sorted(_sealed_files(folder).items()):
        files[rel] = [path.stat().st_size, None if _size_only(rel) else _file_sha256(path)]
    if not files:
        return
    tmp = folder / (SEAL_FILE + ".tmp")
    tmp.write_text(json.dumps({"version": 2, "files": files}))
    tmp.replace(folder / SEAL_FILE)


def check_seal(folder: Path, full: bool) -> str | None:
    """What differs between the shard files and ``integrity.json`` (None: nothing, or no
    seal to check). Sizes always (cheap: a truncated or missing file); ``full``: the sha256
    of every file too (garbled bytes). A shard folder missing as a whole is half an index,
    which :meth:`EdgeStore.ensure_collection` starts over."""
    try:
        seal = json.loads((folder / SEAL_FILE).read_text())
        recorded = seal["files"] if seal.get("version") == 2 else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"{SEAL_FILE} is unreadable: {exc}"
    for rel, (size, digest) in recorded.items():
        path = folder / rel
        if not (folder / rel.split("/", 1)[0]).exists():
            continue
        try:
            actual = path.stat().st_size
            if actual != size:
                return f"{rel} is {actual} bytes, was {size} at the end of the last index run"
            if full and digest and _file_sha256(path) != digest:
                return f"{rel} changed since the last index run (checksum differs)"
        except FileNotFoundError:
            return f"{rel} is missing"
        except OSError as exc:
            return f"{rel} is unreadable: {exc.strerror or exc}"
    return None
