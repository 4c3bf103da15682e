"""discover → load → chunk → embed (batched) → upsert, incrementally by content hash.

Per file, the order of writes keeps the index whole: the file's new points are upserted,
its stale points deleted, and only then is its manifest entry written. A run killed at
any point leaves either the old manifest entry (the file is redone next run) or none
(its stray points are removed as orphans next run).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..embeddings import Encoders
from ..errors import DiracDocsError, InvalidInputError
from ..schemas import Chunk, IndexReport
from ..store import DENSE, DENSE2, FileRecord, Store, ancestor_dirs
from .chunker import chunk_document, dense_windows
from .guard import SkippedFile, read_source
from .loaders import SUPPORTED_SUFFIXES, load_document
from .roots import RootSpec, plan

log = logging.getLogger(__name__)


@dataclass
class SourceFile:
    root: Path
    path: Path
    source: str  # relative to root, forward slashes (the key in the index, once planned)
    rel: str = ""  # relative to its registered root (roots.py); "" = source
    doc_set: str = ""
    version: str = ""


@dataclass
class _Pending:
    file: SourceFile
    sha256: str
    chunks: list[Chunk]


def discover(roots: Sequence[Path]) -> Iterator[SourceFile]:
    """Supported files under each root (a root may also be a single file).

    Hidden folders are skipped; symlinked folders are not followed (no loops), and one that
    leads outside its root is yielded so the run reports it skipped; a file that disappears
    while we walk is simply not yielded. Whether a file may be read is
    :func:`.guard.read_source`'s call.
    """
    for root in roots:
        if root.is_file():
            yield SourceFile(root.parent, root, root.name)
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in dirnames:
                path = Path(dirpath) / name
                if path.is_symlink() and not path.resolve().is_relative_to(root):
                    yield SourceFile(root, path, path.relative_to(root).as_posix())
            for name in sorted(filenames):
                if name.startswith(".") or Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
                    continue
                path = Path(dirpath) / name
                yield SourceFile(root, path, path.relative_to(root).as_posix())


def _sha256(file: SourceFile, max_bytes: int) -> str:
    return hashlib.sha256(read_source(file.path, file.root, max_bytes)).hexdigest()


def _payload(chunk: Chunk, root: Path, file: SourceFile | None = None) -> dict:
    return {
        "doc_set": file.doc_set if file else "",
        "version": file.version if file else "",
        "text": chunk.text,
        "source": chunk.source,
        "section": chunk.section,
        "breadcrumb": chunk.breadcrumb,
        "position": chunk.position,
        "page": chunk.page,
        "root": str(root),
        "dirs": ancestor_dirs(chunk.source),
    }


class Indexer:
    def __init__(self, store: Store, encoders: Encoders, settings):
        self.store = store
        self.encoders = encoders
        self.settings = settings

    def chunk_file(self, file: SourceFile) -> list[Chunk]:
        document = load_document(file.path, file.source)
        return chunk_document(
            document,
            self.encoders.count_tokens,
            max_tokens=self.settings.chunk_max_tokens,
            overlap_tokens=self.settings.chunk_overlap_tokens,
            min_tokens=self.settings.chunk_min_tokens,
        )

    def _dense2_identity(self) -> tuple[str, int] | None:
        """(model id, dimension) of the second dense model, if one is configured. Its
        dimension comes from the index when the index already has that model, so a run
        with nothing to embed never loads it (a no-change re-run stays well under 3 s)."""
        dense2 = self.encoders.dense2_spec
        if dense2 is None:
            return None
        meta = self.store.meta() if self.store.exists() else None
        if meta is not None:
            same = meta.get("dense2_model_id") == dense2.model_id
            # another model (or none): ensure_collection refuses it by id without loading it
            return dense2.model_id, int(meta.get("dense2_dim", 0)) if same else 0
        encoder = self.encoders.dense2
        assert encoder is not None
        return dense2.model_id, encoder.dim

    def run(
        self,
        paths: Sequence[Path | str],
        rebuild: bool = False,
        progress: bool | None = None,
        specs: Sequence[RootSpec] = (),
    ) -> IndexReport:
        """Index ``paths`` (folders or files; see :mod:`.roots` for how each document is
        keyed) and ``specs`` (roots with an explicit prefix, doc set and version)."""
        started = time.perf_counter()
        roots = [Path(p).expanduser().resolve() for p in paths]
        for root in [*roots, *(s.path for s in specs)]:
            if not root.exists():
                raise InvalidInputError(f"{root} does not exist")
        if rebuild:  # beside the old index, which stays usable until finish_rebuild
            self.store.begin_rebuild()
        spec = self.encoders.spec
        self.store.ensure_collection(spec.model_id, spec.dim, self._dense2_identity())
        manifest = self.store.manifest()
        info = self.store.root_info()
        top_levels: dict[str, set[str]] = {}
        for record in manifest.values():
            top_levels.setdefault(record.root, set()).add(record.rel.split("/", 1)[0])
        scopes = plan(roots, specs, info, top_levels)
        report = IndexReport()

        files: list[SourceFile] = []
        for scope in scopes:
            for f in discover([scope.target]):
                rel = f.path.relative_to(scope.root).as_posix()
                key = scope.key(rel)
                files.append(
                    SourceFile(scope.root, f.path, key, rel, scope.doc_set_of(key), scope.version)
                )
        seen: dict[str, SourceFile] = {}
        for f in files:
            if f.source in seen:
                if seen[f.source].path != f.path:
                    report.files_failed += 1
                    report.failures.append(
                        f"{f.path}: same key {f.source!r} as {seen[f.source].path}; skipped"
                    )
                continue
            old = manifest.get(f.source)
            if old is not None and old.root != str(f.root) and old.root in info:
                if (Path(old.root) / old.rel).is_file():
                    report.files_failed += 1
                    report.failures.append(
                        f"{f.path}: key {f.source!r} is already {Path(old.root) / old.rel}; skipped"
                    )
                    continue
            seen[f.source] = f
        report.files_seen = len(files)

        bar = _progress(len(seen), progress)
        pending: list[_Pending] = []
        pending_chunks = 0
        for source, f in seen.items():
            try:
                digest = _sha256(f, self.settings.max_file_bytes)
            except SkippedFile as exc:
                self._skip(source, str(exc), manifest, report)
                bar.update(1)
                continue
            except OSError as exc:
                report.files_failed += 1
                report.failures.append(f"{source}: cannot read ({exc.strerror or exc})")
                bar.update(1)
                continue
            old = manifest.get(source)
            if old is not None and old.sha256 == digest and old.root == str(f.root):
                if (old.doc_set, old.version, old.rel) != (f.doc_set, f.version, f.rel):
                    # same text under a new version label: relabel, no re-embedding
                    self.store.set_chunk_payload(
                        old.chunk_ids, {"doc_set": f.doc_set, "version": f.version}
                    )
                    old.doc_set, old.version, old.rel = f.doc_set, f.version, f.rel
                    self.store.put_file(old)
                report.files_unchanged += 1
                bar.update(1)
                continue
            try:
                chunks = self.chunk_file(f)
            except DiracDocsError as exc:
                report.files_failed += 1
                report.failures.append(f"{source}: {exc}")
                bar.update(1)
                continue
            except Exception as exc:  # a loader bug must not stop the run
                log.debug("unexpected loader failure", exc_info=True)
                report.files_failed += 1
                report.failures.append(f"{source}: {type(exc).__name__}: {exc}")
                bar.update(1)
                continue
            pending.append(_Pending(f, digest, chunks))
            pending_chunks += len(chunks)
            if pending_chunks >= self.settings.embedding_batch_size * 4:
                self._flush(pending, manifest, report, bar)
                pending, pending_chunks = [], 0
        self._flush(pending, manifest, report, bar)
        bar.close()

        # files that vanished from what we were given: only under each scope (a file or a
        # subfolder of a root touches nothing else of that root; other roots are left alone)
        for source, record in list(manifest.items()):
            if source in seen:
                continue
            if any(record.root == str(s.root) and s.covers(record.rel) for s in scopes):
                report.chunks_deleted += self.store.delete_file(record)
                report.files_deleted += 1
                del manifest[source]
        report.chunks_deleted += self.store.delete_orphans(manifest.keys())
        used = {r.root for r in manifest.values()} | {str(s.path.resolve()) for s in specs}
        if seen:
            used |= {str(s.root) for s in scopes}
        self.store.set_root_info({root: entry for root, entry in info.items() if root in used})
        if rebuild:
            self.store.finish_rebuild()
        report.seconds = time.perf_counter() - started
        return report

    def forget_root(self, root: Path | str) -> int:
        """Remove every document of a registered root and the root itself; returns the
        number of documents removed (0 when the root was not indexed)."""
        if not self.store.exists():
            return 0
        root_str = str(Path(root).expanduser().resolve())
        removed = 0
        for record in list(self.store.manifest().values()):
            if record.root == root_str:
                self.store.delete_file(record)
                removed += 1
        info = self.store.root_info()
        info.pop(root_str, None)
        self.store.set_root_info(info)
        return removed

    def _skip(
        self, source: str, reason: str, manifest: dict[str, FileRecord], report: IndexReport
    ) -> None:
        """Report a file :func:`.guard.read_source` refused; what an older run indexed of it
        (before it became a link out of the folder, say) leaves the index."""
        report.files_skipped += 1
        report.skipped.append(f"{source}: {reason}")
        old = manifest.pop(source, None)
        if old is not None:
            report.chunks_deleted += self.store.delete_file(old)
            report.files_deleted += 1

    def _flush(
        self, pending: list[_Pending], manifest: dict[str, FileRecord], report: IndexReport, bar
    ) -> None:
        if not pending:
            return
        all_chunks = [c for p in pending for c in p.chunks]
        if not all_chunks:
            windows: list[list[str]] = []
        else:
            counter = self.encoders.count_tokens
            windows = [
                dense_windows(
                    c,
                    counter,
                    counter.split,
                    self.encoders.spec.max_tokens,
                    self.settings.chunk_overlap_tokens,
                )
                for c in all_chunks
            ]
        flat = [w for ws in windows for w in ws]
        flat_vectors = self.encoders.dense.embed_documents(flat) if flat else []
        dense: list = []
        cursor = 0
        for ws in windows:
            dense.append(flat_vectors[cursor : cursor + len(ws)])
            cursor += len(ws)
        texts = [c.embed_text for c in all_chunks]
        sparse = self.encoders.sparse.embed_documents(texts) if texts else []
        dense2 = self.encoders.dense2
        if dense2 is not None and texts:
            # the second model reads the whole chunk (breadcrumb + text) as one vector
            whole = dense2.embed_documents(texts)
            dense = [{DENSE: d, DENSE2: w} for d, w in zip(dense, whole, strict=True)]
        offset = 0
        for p in pending:
            n = len(p.chunks)
            rows = [
                (c.id, _payload(c, p.file.root, p.file), dense[offset + i], sparse[offset + i])
                for i, c in enumerate(p.chunks)
            ]
            offset += n
            new_ids = [c.id for c in p.chunks]
            self.store.upsert_chunks(rows)
            old = manifest.get(p.file.source)
            stale = set(old.chunk_ids) - set(new_ids) if old else set()
            report.chunks_deleted += self.store.delete_points(stale)
            report.chunks_deleted += self.store.delete_source_points(p.file.source, keep=new_ids)
            record = FileRecord(
                str(p.file.root),
                p.file.source,
                p.sha256,
                new_ids,
                p.file.rel,
                p.file.doc_set,
                p.file.version,
            )
            self.store.put_file(record)
            manifest[p.file.source] = record
            report.files_indexed += 1
            report.chunks_written += n
            log.debug("indexed %s (%d chunks)", p.file.source, n)
            bar.update(1)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool | None):
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="file", file=sys.stderr, desc="indexing")
