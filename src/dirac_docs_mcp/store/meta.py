"""The collection layout and the checks that an index matches the configured models.

Layout (one place for it):

- chunks: one point per chunk, named vectors ``dense`` and ``bm25``. ``dense`` is a
  multivector: one cosine vector per window of the chunk the embedding model can read
  whole, and a chunk scores as its best window (MaxSim); a single vector is a one-window
  chunk. ``bm25`` is sparse, IDF applied by Qdrant. An index built with a second dense
  model (``dense2_model``) also has ``dense2``: one cosine vector of the whole chunk.
  Payload ``text, source, section, breadcrumb, position, page, root, dirs`` with keyword indexes on ``source`` and ``dirs`` and a full-text index (word
  tokens, lowercased) on ``section``.
- files (the manifest): vectorless points, one per indexed file (``kind=file``: root,
  source, sha256, chunk ids) and one ``kind=meta`` point holding the embedding model id,
  its dimension (and those of the second dense model, if any) and the indexed roots. An
  index built with other models is refused.
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelMismatchError

#: the collection layout, kept in meta: 1 = one dense vector per chunk (before the
#: embedded index moved to Qdrant Edge), 2 = dense windows scored by MaxSim
LAYOUT = 2

#: the second dense model of a collection: (model id, dimension)
Dense2 = tuple[str, int]


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
