"""Incremental indexing against a real embedded index with the real embedding model."""

from __future__ import annotations

import pytest

from dirac_docs_mcp.errors import InvalidInputError, ModelMismatchError
from dirac_docs_mcp.indexer.pipeline import Indexer
from dirac_docs_mcp.runtime import Runtime
from dirac_docs_mcp.tools.search import search_docs

from ..conftest import write_fixture_corpus


def _index(settings, *paths, **kw):
    with Runtime(settings) as rt:
        return Indexer(rt.store, rt.encoders, settings).run(list(paths), progress=False, **kw)


def _state(settings):
    with Runtime(settings) as rt:
        manifest = rt.store.manifest()
        ids = rt.store.all_point_ids()
        sources = {c.source for s in manifest for c in rt.store.chunks_of(s)}
    return manifest, ids, sources


def test_incremental_edit_delete_rename(tmp_path, settings_factory):
    corpus = write_fixture_corpus(tmp_path / "corpus")
    settings = settings_factory()
    first = _index(settings, corpus)
    assert first.files_indexed == 6 and first.files_failed == 0
    manifest, ids, _ = _state(settings)
    assert ids == {i for r in manifest.values() for i in r.chunk_ids}

    again = _index(settings, corpus)
    assert again.files_unchanged == 6 and again.files_indexed == 0 and again.chunks_written == 0

    # edit one file, delete one, rename one
    (corpus / "guide/wms/pilots.md").write_text("# Pilots\n\n## Tokens\n\nPilots now use tokens.\n")
    (corpus / "guide/dms/catalog.rst").unlink()
    (corpus / "commands/dirac-proxy-init.txt").rename(corpus / "commands/dirac-proxy-create.txt")
    report = _index(settings, corpus)
    assert report.files_indexed == 2  # the edited and the renamed file
    assert report.files_deleted == 2  # the deleted file and the old name
    assert report.files_unchanged == 3

    manifest, ids, sources = _state(settings)
    on_disk = {p.relative_to(corpus).as_posix() for p in corpus.rglob("*") if p.is_file()}
    assert set(manifest) == on_disk == sources
    assert ids == {
        i for r in manifest.values() for i in r.chunk_ids
    }  # no stray or duplicate points

    with Runtime(settings) as rt:
        hits = search_docs(rt, "pilots use tokens", limit=3).hits
        assert hits[0].source == "guide/wms/pilots.md" and "tokens" in hits[0].text
        assert not any("Filling mode" in h.text for h in search_docs(rt, "filling mode", 10).hits)


def test_bad_files_are_reported_and_skipped(tmp_path, settings_factory):
    corpus = write_fixture_corpus(tmp_path / "corpus")
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (corpus / "empty.md").write_text("")
    (corpus / "latin1.txt").write_bytes(b"caf\xe9 au lait \xff\xfe options")
    report = _index(settings_factory(), corpus)
    assert report.files_failed == 1
    assert report.failures[0].startswith("broken.pdf:")
    assert report.files_indexed == 8


def test_missing_path_is_a_clear_error(tmp_path, settings_factory):
    with pytest.raises(InvalidInputError, match="does not exist"):
        _index(settings_factory(), tmp_path / "nope")


def test_other_embedding_model_is_refused(tmp_path, settings_factory):
    corpus = write_fixture_corpus(tmp_path / "corpus")
    _index(settings_factory(), corpus)
    with pytest.raises(ModelMismatchError, match="re-index|--rebuild"):
        _index(settings_factory(embedding_model="minilm"), corpus)
