"""Reading indexed source documents and the index status.

Only files the index knows can be read: a requested path is looked up in the manifest,
never joined blindly onto a folder, so no path can escape the indexed roots.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from ..errors import InvalidInputError, NotFoundError
from ..indexer.loaders import load_document
from ..runtime import Runtime
from ..schemas import IndexStatus
from .search import URI_SCHEME, normalize_source_prefix

MAX_DOCUMENT_CHARS = 400_000


def _normalize_path(path: str) -> str:
    """A ``dirac-docs://`` link is decoded once, as :func:`.search.doc_link` encoded it once
    (a file named ``100%25.md`` has the link ``100%2525.md``); a bare path is the source path
    itself (what the MCP resource template hands over, already decoded)."""
    raw = (path or "").strip()
    if raw.startswith(URI_SCHEME):
        raw = unquote(raw[len(URI_SCHEME) :])
    decoded = raw
    if "\x00" in decoded:
        raise InvalidInputError("document path contains a NUL byte")
    # a '..' encoded once more (%2e%2e) is refused as well; only manifest paths are read
    for candidate in (decoded, unquote(decoded)):
        if candidate.startswith("/") or ".." in candidate.replace("\\", "/").split("/"):
            raise InvalidInputError(
                f"document path must be relative to an indexed folder, got {path!r}"
            )
    normalized = normalize_source_prefix(decoded)
    if not normalized:
        raise InvalidInputError("document path is empty")
    return normalized


def read_document(runtime: Runtime, path: str) -> tuple[str, str]:
    """Return (text, mime type) of an indexed document. PDFs come back as their text."""
    source = _normalize_path(path)
    record = runtime.store.manifest().get(source)
    if record is None:
        raise NotFoundError(f"'{source}' is not an indexed document")
    root = Path(record.root).resolve()
    file = (root / record.rel).resolve()  # the key may carry its root's prefix
    if not file.is_relative_to(root) or not file.is_file():
        raise NotFoundError(f"'{source}' is no longer on disk under {root}")
    if file.suffix.lower() == ".pdf":
        document = load_document(file, source)
        text = "\n\n".join(
            f"[page {s.page}]\n" + "\n\n".join(b.text for b in s.blocks) for s in document.sections
        )
    else:
        text = file.read_bytes().decode("utf-8", errors="replace")
    if len(text) > MAX_DOCUMENT_CHARS:
        text = text[:MAX_DOCUMENT_CHARS] + f"\n\n[truncated at {MAX_DOCUMENT_CHARS} characters]"
    mime = "text/markdown" if file.suffix.lower() == ".md" else "text/plain"
    return text, mime


def index_status(runtime: Runtime) -> IndexStatus:
    """What the index holds, after checking it is not damaged (IndexDamagedError)."""
    store = runtime.store
    store.verify()
    meta = store.meta() or {}
    manifest = store.manifest()
    doc_sets: dict[str, dict[str, int | str]] = {}
    for record in manifest.values():
        entry = doc_sets.setdefault(record.doc_set or "(unlabelled)", {"documents": 0})
        entry["documents"] = int(entry["documents"]) + 1
    for entry in store.root_info().values():
        if entry.get("doc_set") and entry["doc_set"] in doc_sets and entry.get("version"):
            doc_sets[entry["doc_set"]]["version"] = entry["version"]
    return IndexStatus(
        location=store.location,
        collection=store.collection,
        embedding_model=meta.get("model_id"),
        dense2_model=meta.get("dense2_model_id"),
        points=store.count(),
        files=len(manifest),
        roots=list(meta.get("roots", [])),
        doc_sets=dict(sorted(doc_sets.items())),
    )
