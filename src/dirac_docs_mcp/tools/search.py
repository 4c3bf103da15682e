"""search_dirac_docs: hybrid (dense + BM25) retrieval with citations."""

from __future__ import annotations

import posixpath
from urllib.parse import quote

from ..errors import InvalidInputError, StoreError
from ..runtime import Runtime
from ..schemas import SearchHit, SearchResult
from ..store import Store, StoredChunk

URI_SCHEME = "dirac-docs://"


def doc_link(source: str) -> str:
    return URI_SCHEME + quote(source, safe="/._-~")


def normalize_source_prefix(prefix: str | None) -> str | None:
    """A folder or file path relative to an indexed root; no '..', no absolute paths."""
    if prefix is None:
        return None
    cleaned = prefix.strip().replace("\\", "/")
    if cleaned.startswith(URI_SCHEME):
        cleaned = cleaned[len(URI_SCHEME) :]
    if not cleaned:
        return None
    if cleaned.startswith("/") or ".." in cleaned.split("/"):
        raise InvalidInputError(
            f"source_prefix must be a path relative to the indexed folder, got {prefix!r}"
        )
    normalized = posixpath.normpath(cleaned)
    return None if normalized in (".", "") else normalized


def normalize_doc_set(runtime: Runtime, doc_set: str | None) -> str | None:
    """The doc set as the index spells it (matched without regard to case), or an
    InvalidInputError naming the doc sets the index has."""
    name = (doc_set or "").strip()
    if not name:
        return None
    known = sorted({r.doc_set for r in runtime.store.manifest().values() if r.doc_set})
    for candidate in known:
        if candidate.lower() == name.lower():
            return candidate
    raise InvalidInputError(
        f"doc_set {doc_set!r} is not in the index; it has: {', '.join(known) or 'none'}"
        + ("" if known else " (an index built before doc sets existed: rebuild it)")
    )


def _validate(runtime: Runtime, query: str, limit: int, max_limit: int | None = None) -> str:
    settings = runtime.settings
    text = " ".join((query or "").split())
    if not text:
        raise InvalidInputError("query is empty; ask a question or give keywords")
    if len(text) > settings.max_query_chars:
        raise InvalidInputError(
            f"query is {len(text)} characters; the limit is {settings.max_query_chars}"
        )
    max_limit = max_limit or settings.search_max_limit
    if not 1 <= limit <= max_limit:
        raise InvalidInputError(f"limit must be between 1 and {max_limit}, got {limit}")
    return text


def require_index(runtime: Runtime) -> Store:
    """The runtime's store, or a StoreError telling how to build the missing index."""
    store = runtime.store
    if not store.exists():
        raise StoreError(
            f"no index at {store.location}; build one with 'dirac-docs-mcp index PATH'"
        )
    runtime.check_index_models()
    return store


def retrieve(
    runtime: Runtime,
    query: str,
    limit: int,
    section: str | None = None,
    source_prefix: str | None = None,
    max_limit: int | None = None,
    doc_set: str | None = None,
) -> list[StoredChunk]:
    """The raw ranked chunks (shared by search, answer, the eval and QA selection, which
    may ask for more than ``search_max_limit`` through ``max_limit``)."""
    settings = runtime.settings
    text = _validate(runtime, query, limit, max_limit)
    prefix = normalize_source_prefix(source_prefix)
    section = " ".join((section or "").split()) or None
    store = require_index(runtime)
    doc_set = normalize_doc_set(runtime, doc_set)
    encoders = runtime.encoders
    dense2 = encoders.dense2
    return store.hybrid_search(
        encoders.dense.embed_query(text),
        encoders.sparse.embed_query(text),
        limit=limit,
        prefetch=max(settings.search_prefetch, limit),
        rrf_k=settings.rrf_k,
        weights=(settings.dense_weight, settings.sparse_weight, settings.dense2_weight),
        source_prefix=prefix,
        section=section,
        dense2=dense2.embed_query(text) if dense2 is not None else None,
        fusion=settings.fusion,
        doc_set=doc_set,
    )


def to_hits(chunks: list[StoredChunk], max_chars: int) -> tuple[list[SearchHit], bool]:
    """Turn stored chunks into hits, shortening texts so all of them fit ``max_chars``."""
    budget = max_chars // max(len(chunks), 1)
    truncated = False
    hits = []
    for rank, c in enumerate(chunks, 1):
        text = c.text
        if len(text) > budget:
            text = text[: max(budget - 1, 0)].rstrip() + "…"
            truncated = True
        hits.append(
            SearchHit(
                rank=rank,
                text=text,
                source=c.source,
                section=c.section,
                score=round(c.score, 6),
                chunk_id=c.id,
                link=doc_link(c.source),
                page=c.page,
                doc_set=c.doc_set,
                version=c.version,
            )
        )
    return hits, truncated


def search_docs(
    runtime: Runtime,
    query: str,
    limit: int | None = None,
    section: str | None = None,
    source_prefix: str | None = None,
    doc_set: str | None = None,
) -> SearchResult:
    limit = runtime.settings.search_default_limit if limit is None else limit
    chunks = retrieve(
        runtime, query, limit, section=section, source_prefix=source_prefix, doc_set=doc_set
    )
    hits, truncated = to_hits(chunks, runtime.settings.max_result_chars)
    return SearchResult(query=query, hits=hits, truncated=truncated)


def format_hits(result: SearchResult) -> str:
    """Compact, citation-friendly text mirroring the structured result."""
    if not result.hits:
        return f"No passages found for: {result.query}"
    parts = []
    for h in result.hits:
        where = h.source + (f" (page {h.page})" if h.page else "")
        if h.doc_set:
            where += f"  doc set: {h.doc_set}" + (f" {h.version}" if h.version else "")
        parts.append(
            f"[{h.rank}] {h.section or h.source}\nsource: {where}  link: {h.link}\n{h.text}"
        )
    return "\n\n---\n\n".join(parts)
