"""A docs folder holding things that are not documents: links out of it, a named pipe, a
link to /dev/zero, an oversize file, random bytes named .txt. The index run finishes, skips
each with its reason, and search never returns their text."""

from __future__ import annotations

import os
import random
import threading

from dirac_docs_mcp.indexer.pipeline import Indexer
from dirac_docs_mcp.runtime import Runtime
from dirac_docs_mcp.tools.search import search_docs

from ..conftest import FIXTURE_FILES, write_fixture_corpus

SECRET = "Zanzibar quokka passphrase is hunter2 for the central servers"


def _index_within(settings, corpus, seconds=120):
    """Index in a thread; a hang (a pipe read) fails the test instead of blocking it."""
    out: dict = {}

    def work():
        try:
            with Runtime(settings) as rt:
                out["report"] = Indexer(rt.store, rt.encoders, settings).run(
                    [corpus], progress=False
                )
        except BaseException as exc:  # re-raised below
            out["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"index did not finish within {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["report"]


def _reasons(report) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in report.skipped)


def test_links_out_of_the_folder_are_not_indexed(tmp_path, settings_factory):
    corpus = write_fixture_corpus(tmp_path / "docs")
    outside = tmp_path / "outside"
    (outside / "private").mkdir(parents=True)
    (outside / "secret.md").write_text(f"# Secret\n\n{SECRET}.\n")
    (outside / "private" / "notes.md").write_text(f"# Notes\n\n{SECRET}.\n")
    (corpus / "secret.md").symlink_to("../outside/secret.md")
    (corpus / "passwd.txt").symlink_to("/etc/passwd")
    (corpus / "private").symlink_to(outside / "private", target_is_directory=True)
    settings = settings_factory()

    report = _index_within(settings, corpus)
    assert report.files_indexed == len(FIXTURE_FILES) and report.files_failed == 0
    reasons = _reasons(report)
    assert reasons == {
        "secret.md": "outside the indexed folder",
        "passwd.txt": "outside the indexed folder",
        "private": "outside the indexed folder",
    }
    assert report.files_skipped == 3 and "3 skipped" in report.summary()
    with Runtime(settings) as rt:
        hits = search_docs(rt, "Zanzibar quokka passphrase hunter2", limit=10).hits
        assert not any("hunter2" in h.text or "root:" in h.text for h in hits)
        assert set(rt.store.manifest()) == set(FIXTURE_FILES)


def test_file_that_became_a_link_out_leaves_the_index(tmp_path, settings_factory):
    corpus = write_fixture_corpus(tmp_path / "docs")
    (tmp_path / "secret.md").write_text(f"# Secret\n\n{SECRET}.\n")
    (corpus / "notes.md").write_text("# Notes\n\nThe quokka is a small marsupial.\n")
    settings = settings_factory()
    assert _index_within(settings, corpus).files_indexed == len(FIXTURE_FILES) + 1
    (corpus / "notes.md").unlink()
    (corpus / "notes.md").symlink_to(tmp_path / "secret.md")
    report = _index_within(settings, corpus)
    assert _reasons(report) == {"notes.md": "outside the indexed folder"}
    assert report.files_deleted == 1
    with Runtime(settings) as rt:
        assert "notes.md" not in rt.store.manifest()
        assert not any(c.source == "notes.md" for c in rt.store.chunks_of("notes.md"))
        hits = search_docs(rt, "quokka", limit=10).hits
        assert not any(h.source == "notes.md" for h in hits)


def test_pipe_dev_zero_oversize_and_binary_files_are_skipped(tmp_path, settings_factory):
    corpus = write_fixture_corpus(tmp_path / "docs")
    os.mkfifo(corpus / "pipe.md")  # reading it blocks for ever
    (corpus / "zero.txt").symlink_to("/dev/zero")  # reading it never ends
    (corpus / "big.md").write_text("# Big\n\n" + "quokka " * 1000)
    (corpus / "noise.txt").write_bytes(random.Random(1).randbytes(4000))
    settings = settings_factory(max_file_bytes=5000)

    report = _index_within(settings, corpus)
    reasons = _reasons(report)
    assert reasons["pipe.md"] == "not a regular file"
    assert reasons["zero.txt"] in ("outside the indexed folder", "not a regular file")
    assert reasons["big.md"].startswith("too large (7007 bytes; the limit is max_file_bytes=5000")
    assert reasons["noise.txt"] == "binary content"
    assert report.files_skipped == 4 and report.files_failed == 0
    assert report.files_indexed == len(FIXTURE_FILES)
    with Runtime(settings) as rt:
        assert set(rt.store.manifest()) == set(FIXTURE_FILES)
