"""What every index backend shares: the record shapes, the point-id scheme and the
:class:`Store` interface the indexer and the tools program against. The collection layout
and the model checks are in :mod:`.meta`, the fusion maths in :mod:`.fusion`.

Two backends implement it: :class:`~.edge_store.EdgeStore` (embedded, on disk, the default)
and :class:`~.qdrant_client_store.QdrantClientStore` (a Qdrant server or cluster by URL);
:func:`dirac_docs_mcp.store.open_store` picks one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import IndexDamagedError, IndexInUseError, StoreError
from .meta import Dense2, meta_dense2

DENSE = "dense"
DENSE2 = "dense2"
SPARSE = "bm25"
_NAMESPACE = uuid.UUID("6f1c1d3e-8a52-4d47-9a55-2f0f5b1f3c11")
_META_ID = str(uuid.uuid5(_NAMESPACE, "__meta__"))
UPSERT_BATCH = 256

DenseInput = Sequence[float] | Sequence[Sequence[float]]
#: (point id, payload, dense vector or window vectors -- or ``{DENSE: windows, DENSE2:
#: vector}`` in an index with a second dense model --, (sparse indices, sparse values))
ChunkRow = tuple[str, dict[str, Any], Any, tuple[list[int], list[float]]]


def as_list(values: Any) -> list:
    """A list of plain Python numbers from a list, tuple or numpy array."""
    return values.tolist() if hasattr(values, "tolist") else list(values)


def named_dense(dense: Any) -> dict[str, Any]:
    """A row's dense part as named vectors: ``{DENSE: windows[, DENSE2: vector]}``."""
    if isinstance(dense, dict):
        out: dict[str, Any] = {DENSE: as_windows(dense[DENSE])}
        if dense.get(DENSE2) is not None:
            out[DENSE2] = as_list(dense[DENSE2])
        return out
    return {DENSE: as_windows(dense)}


def as_windows(dense: Any) -> list[list[float]]:
    """One vector or a list of window vectors (lists or numpy arrays) -> list of lists."""
    if hasattr(dense, "tolist"):
        dense = dense.tolist()
    dense = list(dense)
    if dense and not isinstance(dense[0], (int, float)):
        return [v.tolist() if hasattr(v, "tolist") else list(v) for v in dense]
    return [dense]


@dataclass
class FileRecord:
    """A manifest entry. ``source`` is the document's key in the index (``prefix/rel``, or
    ``rel`` for a root without prefix); ``rel`` is its path relative to ``root`` on disk
    (an index written before roots had prefixes has no ``rel``: it equals ``source``)."""

    root: str
    source: str
    sha256: str
    chunk_ids: list[str] = field(default_factory=list)
    rel: str = ""
    doc_set: str = ""
    version: str = ""

    def __post_init__(self) -> None:
        if not self.rel:
            self.rel = self.source

    @property
    def point_id(self) -> str:
        return file_point_id(self.source)

    def payload(self) -> dict[str, Any]:
        return {
            "kind": "file",
            "root": self.root,
            "source": self.source,
            "sha256": self.sha256,
            "chunk_ids": list(self.chunk_ids),
            "rel": self.rel,
            "doc_set": self.doc_set,
            "version": self.version,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> FileRecord:
        return cls(
            payload.get("root", ""),
            payload["source"],
            payload.get("sha256", ""),
            list(payload.get("chunk_ids", [])),
            payload.get("rel") or "",
            payload.get("doc_set") or "",
            payload.get("version") or "",
        )


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
    doc_set: str = ""
    version: str = ""

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
            doc_set=payload.get("doc_set") or "",
            version=payload.get("version") or "",
        )


def file_point_id(source: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "file:" + source))


def ancestor_dirs(source: str) -> list[str]:
    """``a/b/c.rst`` -> ``["a", "a/b", "a/b/c.rst"]``: exact-match keys for prefix filters."""
    parts = source.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def in_fused_order(fused: Sequence[tuple[str, float]], points: Iterable[Any]) -> list[StoredChunk]:
    """The retrieved ``points`` (with payload) as chunks, in the order and with the scores of
    ``fused``; an id that was not retrieved (deleted meanwhile) is left out."""
    payloads = {str(p.id): p.payload or {} for p in points}
    return [
        StoredChunk.from_payload(pid, payloads[pid], score)
        for pid, score in fused
        if pid in payloads
    ]


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


REBUILD_HINT = "rebuild it with 'dirac-docs-mcp index --rebuild PATH'"


def damaged_error(location: object, detail: str) -> IndexDamagedError:
    return IndexDamagedError(f"the index at {location} is damaged ({detail}); {REBUILD_HINT}")


def check_manifest_points(store: Store) -> None:
    """Every chunk a manifest entry names is a point of the index. Holds after a completed
    index run only: a killed one may leave an entry naming points it had deleted."""
    listed = {i for r in store.manifest().values() for i in r.chunk_ids}
    missing = listed - store.all_point_ids()
    if missing:
        raise damaged_error(
            store.location, f"{len(missing)} chunks the manifest lists are not in the index"
        )


def in_use_error(path: object) -> IndexInUseError:
    return IndexInUseError(
        f"the index at {path} is in use by another process (a running "
        f"'dirac-docs-mcp serve'?). Stop that process first, or run a Qdrant server "
        f"and set DIRAC_MCP_QDRANT_URL so several processes can share one index"
    )


class Store:
    """The index. Open with :func:`dirac_docs_mcp.store.open_store`; use as a context
    manager or call :meth:`close`. Every method is safe to call from several threads of one
    process.
    """

    collection: str
    location: str

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- collections --------------------------------------------------------------------
    def exists(self) -> bool:
        raise NotImplementedError

    def meta(self) -> dict[str, Any] | None:
        raise NotImplementedError

    def ensure_collection(self, model_id: str, dim: int, dense2: Dense2 | None = None) -> None:
        """Create the collections, or check that an existing one used the same models
        (:class:`ModelMismatchError` if not). ``dense2``: the second dense model."""
        raise NotImplementedError

    def _write_meta(self, payload: dict[str, Any]) -> None:
        raise NotImplementedError

    def set_roots(self, roots: Sequence[str]) -> None:
        meta = self.meta() or {"kind": "meta"}
        meta["roots"] = sorted(set(roots))
        self._write_meta(meta)

    def roots(self) -> list[str]:
        meta = self.meta()
        return list(meta.get("roots", [])) if meta else []

    def root_info(self) -> dict[str, dict[str, Any]]:
        """Each indexed root's namespace: ``{root: {"prefix", "doc_set", "version"}}``. A
        root recorded before prefixes existed has prefix "" (its keys are its relative
        paths, as they always were)."""
        meta = self.meta() or {}
        info = {str(k): dict(v) for k, v in (meta.get("root_info") or {}).items()}
        for root in meta.get("roots", []):
            info.setdefault(root, {"prefix": ""})
        return info

    def set_root_info(self, info: dict[str, dict[str, Any]]) -> None:
        """Record the roots and their namespaces (the ``roots`` list stays for old readers)."""
        meta = self.meta() or {"kind": "meta"}
        meta["root_info"] = {k: dict(v) for k, v in sorted(info.items())}
        meta["roots"] = sorted(info)
        self._write_meta(meta)

    def set_chunk_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> None:
        """Set these payload fields on these chunks (a new version label on unchanged
        files: no re-embedding)."""
        raise NotImplementedError

    def drop(self) -> None:
        raise NotImplementedError

    def begin_rebuild(self) -> None:
        """Start an index from scratch (``index --rebuild``). Here: drop the old one; the
        embedded index builds beside the old one instead and swaps it in at
        :meth:`finish_rebuild`, so a crash never leaves it empty."""
        self.drop()

    def finish_rebuild(self) -> None:
        """The end of a successful rebuild: the new index replaces the old one."""

    def verify(self) -> None:
        """Raise :class:`IndexDamagedError` if the index is found damaged. A server checks
        its own storage, so here: nothing; the embedded index checks its files' checksums
        and the manifest against the points (:meth:`EdgeStore.verify`)."""

    # --- manifest -----------------------------------------------------------------------
    def manifest(self) -> dict[str, FileRecord]:
        raise NotImplementedError

    def put_file(self, record: FileRecord) -> None:
        raise NotImplementedError

    def _delete_file_entry(self, record: FileRecord) -> None:
        raise NotImplementedError

    def delete_file(self, record: FileRecord) -> int:
        """Remove a file's chunks, then its manifest entry (in that order: a crash in
        between leaves an entry whose re-index cleans up)."""
        removed = self.delete_points(record.chunk_ids)
        removed += self.delete_source_points(record.source)
        self._delete_file_entry(record)
        return removed

    # --- points -------------------------------------------------------------------------
    def upsert_chunks(self, rows: Sequence[ChunkRow]) -> None:
        """rows: (point id, payload, dense vector, (sparse indices, sparse values))."""
        raise NotImplementedError

    def delete_points(self, ids: Iterable[str]) -> int:
        raise NotImplementedError

    def delete_source_points(self, source: str, keep: Iterable[str] = ()) -> int:
        """Delete a source's points other than ``keep`` (catches strays from a crashed run)."""
        raise NotImplementedError

    def delete_orphans(self, sources: Iterable[str]) -> int:
        """Delete points whose source has no manifest entry (left by a killed run)."""
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def chunks_of(self, source: str) -> list[StoredChunk]:
        raise NotImplementedError

    def all_point_ids(self) -> set[str]:
        raise NotImplementedError

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
        """Dense and BM25 candidates fused by weighted reciprocal-rank fusion (``rrf``) or
        by a weighted sum of min-max normalised scores (``minmax``, see :func:`fuse`).

        ``dense`` is the query vector (or several, summed by MaxSim); ``prefetch`` is the
        number of candidates each retriever contributes; ``weights`` are (dense, sparse) or
        (dense, sparse, dense2); ``dense2`` is the query vector of the second dense model
        (only for an index built with one). ``doc_set``: only chunks of that doc set."""
        raise NotImplementedError

    def export_rows(self, batch_size: int = 256) -> Iterator[list[ChunkRow]]:
        """Every chunk with its vectors, in batches (for copying an index elsewhere)."""
        raise NotImplementedError

    def best_dense_score(self, dense: DenseInput) -> float | None:
        """The highest dense (cosine, best window) score of any chunk, None when empty:
        an absolute "is anything about this?" signal that rank fusion cannot give."""
        raise NotImplementedError


def row_from_point(point_id: Any, payload: dict[str, Any] | None, vectors: Any) -> ChunkRow:
    """A stored point (either engine's shape: named vectors, sparse with indices/values)
    back into the row ``upsert_chunks`` takes."""
    vectors = vectors or {}
    sparse = vectors.get(SPARSE)
    pair = (list(sparse.indices), list(sparse.values)) if sparse is not None else ([], [])
    dense: Any = vectors.get(DENSE, [])
    if vectors.get(DENSE2) is not None:
        dense = {DENSE: dense, DENSE2: vectors[DENSE2]}
    return (str(point_id), dict(payload or {}), dense, pair)


def copy_index(source: Store, target: Store, batch_size: int = 256) -> int:
    """Copy every chunk (with its vectors), the manifest and the roots from ``source`` into
    ``target`` — e.g. an embedded index into a Qdrant server. Chunks go first and the
    manifest last, so an interrupted copy is completed by running it again. Returns the
    number of chunks copied."""
    meta = source.meta()
    if meta is None or not source.exists():
        raise StoreError(f"nothing to copy: no index at {source.location}")
    target.ensure_collection(meta["model_id"], int(meta["dim"]), meta_dense2(meta))
    copied = 0
    for rows in source.export_rows(batch_size):
        target.upsert_chunks(rows)
        copied += len(rows)
    for record in source.manifest().values():
        target.put_file(record)
    target.set_root_info(source.root_info())
    return copied
