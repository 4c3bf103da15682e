"""A damaged index is reported as damaged (exit 4, 'index --rebuild' in the message), never
served as if healthy; a rebuild is built beside the old index, so killing it leaves the old
one answering."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dirac_docs_mcp.errors import IndexDamagedError
from dirac_docs_mcp.indexer.pipeline import Indexer
from dirac_docs_mcp.runtime import Runtime
from dirac_docs_mcp.tools.documents import index_status
from dirac_docs_mcp.tools.search import search_docs

from ..conftest import FIXTURE_FILES, write_fixture_corpus
from .test_cli_exit_codes import _env, run_cli
from .test_faults import wait_for_indexed_file

HINT = "dirac-docs-mcp index --rebuild"


def _index(settings, corpus, **kw):
    with Runtime(settings) as rt:
        return Indexer(rt.store, rt.encoders, settings).run([corpus], progress=False, **kw)


def _top_source(settings, query="when is a job declared stalled"):
    with Runtime(settings) as rt:
        return search_docs(rt, query, limit=1).hits[0].source


def _one(settings, pattern: str) -> Path:
    found = sorted((settings.index_path / settings.collection).glob(pattern))
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def built(tmp_path, settings_factory):
    corpus = write_fixture_corpus(tmp_path / "corpus")
    settings = settings_factory()
    assert _index(settings, corpus).files_indexed == len(FIXTURE_FILES)
    return settings, corpus


def test_healthy_index_stays_healthy(built):
    settings, corpus = built
    for _ in range(2):  # opening and searching rewrite some files; none is a false alarm
        with Runtime(settings) as rt:
            assert index_status(rt).files == len(FIXTURE_FILES)
            assert search_docs(rt, "filling mode pilots", limit=1).hits
    assert (settings.index_path / settings.collection / "integrity.json").is_file()
    assert _index(settings, corpus).files_unchanged == len(FIXTURE_FILES)
    (corpus / "guide/wms/pilots.md").write_text("# Pilots\n\nPilots now use tokens.\n")
    (corpus / "guide/dms/catalog.rst").unlink()  # deletes replay from the log on open
    assert _index(settings, corpus).files_deleted == 1
    for _ in range(2):
        with Runtime(settings) as rt:
            assert index_status(rt).files == len(FIXTURE_FILES) - 1


def test_truncated_segment_file_is_reported_with_the_rebuild_hint(built):
    settings, corpus = built
    page = _one(settings, "chunks/segments/*/payload_storage/page_0.dat")
    os.truncate(page, page.stat().st_size // 2)
    env = _env(settings)
    for args in (("status",), ("search", "stalled jobs"), ("index", str(corpus))):
        result = run_cli(*args, "--no-progress" if args[0] == "index" else "--json", env=env)
        last = result.stderr.strip().splitlines()[-1]
        assert result.returncode == 4, (args, result.stderr)
        assert HINT in last and "page_0.dat" in last, last
        assert "unchanged" not in result.stdout
    result = run_cli("index", "--rebuild", "--no-progress", str(corpus), env=env)
    assert result.returncode == 0, result.stderr
    assert run_cli("status", env=env).returncode == 0
    assert _top_source(settings) == "guide/wms/agents.rst"


def test_garbled_vectors_are_detected(built):
    settings, corpus = built
    vectors = _one(settings, "chunks/segments/*/vector_storage-dense/vectors/chunk_0.mmap")
    with open(vectors, "r+b") as handle:
        handle.seek(4096)
        handle.write(os.urandom(65536))  # same size: found by status, which hashes every file
    with Runtime(settings) as rt, pytest.raises(IndexDamagedError, match="checksum differs"):
        index_status(rt)
    env = _env(settings)
    for args in (("status",), ("index", "--no-progress", str(corpus))):
        result = run_cli(*args, env=env)
        assert result.returncode == 4 and HINT in result.stderr, result.stderr
        assert "unchanged" not in result.stdout


def test_search_engine_errors_name_the_rebuild(built):
    settings, _ = built
    with Runtime(settings) as rt:
        chunks = rt.store._chunks

        class Broken:
            def __getattr__(self, name):
                return getattr(chunks, name)

            def query_batch(self, batch):
                raise RuntimeError("Service internal error: corrupted page")

        rt.store._chunks = Broken()
        try:
            with pytest.raises(IndexDamagedError, match=HINT):
                search_docs(rt, "stalled jobs", limit=3)
        finally:
            rt.store._chunks = chunks


def _big_corpus(root: Path, copies: int) -> Path:
    for i in range(copies):
        for rel, text in FIXTURE_FILES.items():
            path = root / f"part{i:02d}" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text.replace("DIRAC", f"DIRAC-{i}"))
    return root


def test_killed_rebuild_leaves_the_old_index_answering(built, tmp_path):
    settings, corpus = built
    big = _big_corpus(tmp_path / "big", 40)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dirac_docs_mcp",
            "-v",
            "index",
            "--rebuild",
            "--no-progress",
            str(big),
        ],
        env=_env(settings),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_indexed_file(proc)
        rebuild = settings.index_path / (settings.collection + ".rebuild")
        assert rebuild.is_dir()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with Runtime(settings) as rt:
        status = index_status(rt)
        assert status.files == len(FIXTURE_FILES) and status.roots == [str(corpus)]
    assert not rebuild.exists()  # the half-built index is gone
    assert _top_source(settings) == "guide/wms/agents.rst"


def test_crash_between_the_two_renames_is_undone(built):
    settings, _ = built
    live = settings.index_path / settings.collection
    old = live.with_name(live.name + ".old")
    live.rename(old)  # the old index moved aside, the new one not yet in place
    with Runtime(settings) as rt:
        assert index_status(rt).files == len(FIXTURE_FILES)
    assert live.is_dir() and not old.exists()
    shutil.rmtree(live)
