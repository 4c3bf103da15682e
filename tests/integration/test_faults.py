"""Faults: a killed indexer, loops and vanished files in the tree, an unreachable server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from dirac_docs_mcp.errors import StoreError
from dirac_docs_mcp.indexer.pipeline import Indexer
from dirac_docs_mcp.runtime import Runtime
from dirac_docs_mcp.store import open_store
from tests.qdrant_local import open_local

from ..conftest import FIXTURE_FILES, write_fixture_corpus


def _big_corpus(root, copies=25):
    for i in range(copies):
        for rel, text in FIXTURE_FILES.items():
            path = root / f"part{i:02d}" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text.replace("DIRAC", f"DIRAC-{i}"))
    return root


def _ids_and_count(settings):
    with Runtime(settings) as rt:
        return rt.store.all_point_ids(), rt.store.count(), set(rt.store.manifest())


def wait_for_indexed_file(proc: subprocess.Popen, timeout: float = 300) -> None:
    """Block until the indexer (run with -v, stderr piped as text) logs its first finished
    file, so a kill lands after at least one file is done."""
    done = threading.Event()

    def read():
        for line in proc.stderr:
            if " indexed " in line:
                done.set()
        done.set()  # the process ended

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(timeout), "no file was indexed in time"
    assert proc.poll() is None, "the indexer finished before it could be killed; grow the corpus"


def test_sigkill_mid_run_then_rerun_equals_clean_build(tmp_path, settings_factory):
    copies = 60
    corpus = _big_corpus(tmp_path / "corpus", copies)
    killed = settings_factory(index_path=tmp_path / "killed")
    env = dict(
        os.environ,
        DIRAC_MCP_DATA_DIR=str(killed.data_dir),
        DIRAC_MCP_INDEX_PATH=str(killed.index_path),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "dirac_docs_mcp", "-v", "index", str(corpus), "--no-progress"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # kill it without warning once at least one file is done (a kill before that would
    # test nothing of the resume)
    try:
        wait_for_indexed_file(proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    total = len(FIXTURE_FILES) * copies
    with Runtime(killed) as rt:
        done_before = len(rt.store.manifest())
    assert 0 < done_before < total

    with Runtime(killed) as rt:
        report = Indexer(rt.store, rt.encoders, killed).run([corpus], progress=False)
    assert report.files_failed == 0
    assert report.files_unchanged == done_before  # finished files were not redone
    clean = settings_factory(index_path=tmp_path / "clean")
    with Runtime(clean) as rt:
        Indexer(rt.store, rt.encoders, clean).run([corpus], progress=False)
    assert _ids_and_count(killed) == _ids_and_count(clean)


def test_symlink_loop_and_dangling_file_are_skipped(tmp_path, settings_factory):
    corpus = write_fixture_corpus(tmp_path / "corpus")
    (corpus / "loop").symlink_to(corpus, target_is_directory=True)
    gone = corpus / "gone.md"
    gone.write_text("# soon gone\n")
    (corpus / "vanished.md").symlink_to(gone)
    gone.unlink()  # the link now points at a file that no longer exists
    settings = settings_factory()
    with Runtime(settings) as rt:
        report = Indexer(rt.store, rt.encoders, settings).run([corpus], progress=False)
    assert report.files_indexed == len(FIXTURE_FILES)
    assert report.files_failed == 1 and report.failures[0].startswith("vanished.md")


def test_unreachable_qdrant_server_is_a_clear_error_not_a_hang(settings_factory):
    settings = settings_factory(qdrant_url="http://127.0.0.1:9", qdrant_timeout_s=2)
    started = time.time()
    with pytest.raises(StoreError, match="cannot reach Qdrant at http://127.0.0.1:9"):
        open_store(settings)
    assert time.time() - started < 10


def test_copy_embedded_index_to_a_qdrant_client_store(tmp_path, settings_factory):
    """What `dirac-docs-mcp migrate --to-url` does, with qdrant-client's embedded mode
    standing in for a server (same QdrantClientStore code; no server runs here)."""
    from dirac_docs_mcp.store import copy_index

    corpus = write_fixture_corpus(tmp_path / "corpus")
    settings = settings_factory()
    with Runtime(settings) as rt:
        Indexer(rt.store, rt.encoders, settings).run([corpus], progress=False)
        query_dense = rt.encoders.dense.embed_query("when is a job declared stalled")
        query_sparse = rt.encoders.sparse.embed_query("when is a job declared stalled")
        source = rt.store
        target = open_local(tmp_path / "server", settings.collection)
        try:
            copied = copy_index(source, target)
            assert copied == source.count() == target.count()
            assert target.all_point_ids() == source.all_point_ids()
            assert target.manifest().keys() == source.manifest().keys()
            assert target.meta()["model_id"] == source.meta()["model_id"]
            args = (query_dense, query_sparse, 5, 40, 10, (1.0, 1.0))
            assert [c.id for c in target.hybrid_search(*args)] == [
                c.id for c in source.hybrid_search(*args)
            ]
        finally:
            target.close()
