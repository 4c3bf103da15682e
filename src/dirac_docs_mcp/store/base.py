"""What every index backend shares: the record shapes, the point-id scheme and the
:class:`Store` interface the indexer and the tools program against.

Layout (one place for it):

- chunks: one point per chunk, named vectors ``dense`` and ``bm25``. ``dense`` is a
  multivector: one cosine vector per window of the chunk the embedding model can read
  whole, and a chunk scores as its best window (MaxSim); a single vector is a one-window
  chunk. ``bm25`` is sparse, IDF applied by Qdrant. An index built with a second dense
  model (``dense2_model``) also has ``dense2``: one cosine vector of the whole chunk. Payload payload ``text, source, section, breadcrumb, position, page, root,
  dirs`` with keyword indexes on ``source`` and ``dirs`` and a full-text index (word
  tokens, lowercased) on ``section``.
- files (the manifest): vectorless points, one per indexed file (``kind=file``: root,
  source, sha256, chunk ids) and one ``kind=meta`` point holding the embedding model id,
  its dimension (and those of the second dense model, if any) and the indexed roots. An
  index built with other models is refused.

Two backends implement it: :class:`~.edge_store.EdgeStore` (embedded, on disk, the default)
and :class:`~.qdrant_client_store.QdrantClientStore` (a Qdrant server or cluster by URL).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import IndexInUseError, ModelMismatchError, StoreError

if TYPE_CHECKING:
    from ..config import Settings

DENSE = "dense"
DENSE2 = "dense2"
SPARSE = "bm25"
_NAMESPACE = uuid.UUID("6f1c1d3e-8a52-4d47-9a55-2f0f5b1f3c11")
_META_ID = str(uuid.uuid5(_NAMESPACE, "__meta__"))
UPSERT_BATCH = 256
#: the collection layout, kept in meta: 1 = one dense vector per chunk (before the
#: embedded index moved to Qdrant Edge), 2 = dense windows scored by MaxSim
LAYOUT = 2

DenseInput = Sequence[float] | Sequence[Sequence[float]]
#: (point id, payload, dense vector or window vectors -- or ``{DENSE: windows, DENSE2:
#: vector}`` in an index with a second dense model --, (sparse indices, sparse values))
ChunkRow = tuple[str, dict[str, Any], Any, tuple[list[int], list[float]]]
#: the second dense model of a collection: (model id, dimension)
Dense2 = tuple[str, int]


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
    root: str
    source: str
    sha256: str
    chunk_ids: list[str] = field(default_factory=list)

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
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> FileRecord:
        return cls(
            payload.get("root", ""),
            payload["source"],
            payload.get("sha256", ""),
            list(payload.get("chunk_ids", [])),
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


def weighted_rrf(
    ranked_lists: Sequence[Sequence[str]], k: int, weights: Sequence[float]
) -> list[tuple[str, float]]:
    """Weighted reciprocal-rank fusion, exactly as Qdrant defines it (and as qdrant-client's
    embedded mode computes it): the point at 0-based rank ``r`` of a list with weight ``w``
    scores ``1 / ((r + 1) / w + k - 1)`` (``1 / (k + r)`` at ``w = 1``; nothing at
    ``w <= 0``), summed over the lists, best first.

    Ties keep the order of first appearance (the first list, then the next), which makes
    the ranking deterministic; Qdrant's own fusion leaves ties in hash-map order.
    """
    scores: dict[str, float] = {}
    for ranked, weight in zip(ranked_lists, weights, strict=True):
        for rank, pid in enumerate(ranked):
            score = 0.0 if weight <= 0 else 1.0 / ((rank + 1.0) / weight + k - 1.0)
            scores[pid] = scores.get(pid, 0.0) + score
    return sorted(scores.items(), key=lambda item: item[1], reverse=True)


def minmax_fusion(
    scored_lists: Sequence[Sequence[tuple[str, float]]], weights: Sequence[float]
) -> list[tuple[str, float]]:
    """Convex combination of min-max normalised scores ("score fusion").

    Each list's scores are scaled to [0, 1] over that list (its best candidate 1, its last
    0; a list whose scores are all equal gives each 1), multiplied by the list's weight and
    summed; a point absent from a list gets nothing from it. Unlike rank fusion this keeps
    how far ahead a retriever's best candidates are, which a strong dense model makes worth
    keeping (measured in ``benchmarks/results/dense2_fusion_grid.json``). Ties keep the
    order of first appearance, as in :func:`weighted_rrf`.
    """
    scores: dict[str, float] = {}
    for scored, weight in zip(scored_lists, weights, strict=True):
        if not scored:
            continue
        values = [s for _, s in scored]
        lo, hi = min(values), max(values)
        for pid, value in scored:
            norm = 1.0 if hi == lo else (value - lo) / (hi - lo)
            scores[pid] = scores.get(pid, 0.0) + (max(weight, 0.0) * norm)
    return sorted(scores.items(), key=lambda item: item[1], reverse=True)


def fuse(
    scored_lists: Sequence[Sequence[tuple[str, float]]],
    fusion: str,
    rrf_k: int,
    weights: Sequence[float],
) -> list[tuple[str, float]]:
    """The fused ranking of ``(point id, score)`` lists, best first."""
    if fusion == "minmax":
        return minmax_fusion(scored_lists, weights)
    if fusion == "rrf":
        return weighted_rrf([[pid for pid, _ in lst] for lst in scored_lists], rrf_k, weights)
    raise ValueError(f"unknown fusion {fusion!r}")


def in_fused_order(
    fused: Sequence[tuple[str, float]], points: Iterable[Any]
) -> list[StoredChunk]:
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


def in_use_error(path: object) -> IndexInUseError:
    return IndexInUseError(
        f"the index at {path} is in use by another process (a running "
        f"'dirac-docs-mcp serve'?). Stop that process first, or run a Qdrant server "
        f"and set DIRAC_MCP_QDRANT_URL so several processes can share one index"
    )


_REINDEX = (
    "re-index from scratch with 'dirac-docs-mcp index --rebuild PATH', or use another "
    "collection (DIRAC_MCP_COLLECTION)"
)
_REINDEX_HINT = _REINDEX[0].upper() + _REINDEX[1:]


def model_mismatch_error(
    location: str, meta: dict[str, Any], model_id: str, dim: int
) -> ModelMismatchError:
    return ModelMismatchError(
        f"the index at {location} was built with embedding model "
        f"'{meta.get('model_id')}' ({meta.get('dim')}-d), not '{model_id}' ({dim}-d). "
        + _REINDEX_HINT
    )


def meta_dense2(meta: dict[str, Any]) -> Dense2 | None:
    """The second dense model an index was built with, if any."""
    if not meta.get("dense2_model_id"):
        return None
    return str(meta["dense2_model_id"]), int(meta.get("dense2_dim", 0))


def _describe_dense2(dense2: Dense2 | None) -> str:
    return f"'{dense2[0]}' ({dense2[1]}-d)" if dense2 else "none"


def check_meta(
    location: str, meta: dict[str, Any], model_id: str, dim: int, dense2: Dense2 | None = None
) -> None:
    """Raise :class:`ModelMismatchError` unless the index was built with these models and
    this layout."""
    if meta.get("model_id") != model_id or int(meta.get("dim", 0)) != dim:
        raise model_mismatch_error(location, meta, model_id, dim)
    if meta_dense2(meta) != (tuple(dense2) if dense2 else None):
        raise ModelMismatchError(
            f"the index at {location} was built with second dense model "
            f"{_describe_dense2(meta_dense2(meta))}, not {_describe_dense2(dense2)} "
            f"(DIRAC_MCP_DENSE2_MODEL). " + _REINDEX_HINT
        )
    if meta.get("layout", 1) != LAYOUT:
        raise ModelMismatchError(
            f"the index at {location} was built by an older version of dirac-docs-mcp "
            f"(layout {meta.get('layout', 1)}, now {LAYOUT}). Re-index from scratch with "
            f"'dirac-docs-mcp index --rebuild PATH'"
        )


def check_model_ids(
    location: str,
    meta: dict[str, Any],
    model_id: str,
    dense2_model_id: str | None,
    known_names: dict[str, str] | None = None,
) -> None:
    """The search-time check: the configured models are those the index was built with.
    ``known_names`` maps built-in second-model ids to their setting names, for the hint."""
    if meta.get("model_id") != model_id:
        raise ModelMismatchError(
            f"the index at {location} was built with embedding model "
            f"'{meta.get('model_id')}', but '{model_id}' is configured "
            f"(DIRAC_MCP_EMBEDDING_MODEL). " + _REINDEX_HINT
        )
    built = meta.get("dense2_model_id") or None
    if built != dense2_model_id:
        setting = (known_names or {}).get(built or "")
        hint = (
            f"Set DIRAC_MCP_DENSE2_MODEL={setting} to search it as built, or {_REINDEX}"
            if setting
            else _REINDEX_HINT
        )
        raise ModelMismatchError(
            f"the index at {location} was built with second dense model "
            f"'{built or 'none'}', but '{dense2_model_id or 'none'}' is configured "
            f"(DIRAC_MCP_DENSE2_MODEL). {hint}"
        )


def new_meta(model_id: str, dim: int, dense2: Dense2 | None = None) -> dict[str, Any]:
    meta = {"kind": "meta", "model_id": model_id, "dim": dim, "layout": LAYOUT, "roots": []}
    if dense2:
        meta.update(dense2_model_id=dense2[0], dense2_dim=int(dense2[1]))
    return meta


class Store:
    """The index. Open with :meth:`open`; use as a context manager or call :meth:`close`.

    ``Store.open`` picks the backend: a Qdrant server when ``qdrant_url`` is set, else the
    embedded on-disk index at ``index_path``. Every method is safe to call from several
    threads of one process.
    """

    collection: str
    location: str

    # --- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings) -> Store:
        if settings.qdrant_url:
            from .qdrant_client_store import QdrantClientStore

            return QdrantClientStore.connect(settings)
        from .edge_store import EdgeStore

        return EdgeStore.open_path(settings.index_path, settings.collection)

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

    def drop(self) -> None:
        raise NotImplementedError

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
    ) -> list[StoredChunk]:
        """Dense and BM25 candidates fused by weighted reciprocal-rank fusion (``rrf``) or
        by a weighted sum of min-max normalised scores (``minmax``, see :func:`fuse`).

        ``dense`` is the query vector (or several, summed by MaxSim); ``prefetch`` is the
        number of candidates each retriever contributes; ``weights`` are (dense, sparse) or
        (dense, sparse, dense2); ``dense2`` is the query vector of the second dense model
        (only for an index built with one)."""
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
    target.set_roots(source.roots())
    return copied
