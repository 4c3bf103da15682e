"""``sources sync`` against local bare git repositories made here (no network), and the
root namespacing that keeps every file of several roots."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dirac_docs_mcp.cli import main
from dirac_docs_mcp.indexer.pipeline import Indexer
from dirac_docs_mcp.runtime import Runtime
from dirac_docs_mcp.sources.commands import command_help
from dirac_docs_mcp.store import open_store
from dirac_docs_mcp.tools.answer import answer_question
from dirac_docs_mcp.tools.documents import read_document
from dirac_docs_mcp.tools.search import search_docs

SCRIPT = '''"""
Show the stalled jobs of a site

Example:
  $ dirac-wms-show-stalled LCG.CERN.ch
"""
from DIRAC.Core.Base.Script import Script


@Script()
def main():
    Script.registerSwitch("S:", "Site=", "the site to look at")
    Script.registerSwitch("", "all", "every site")
    Script.registerArgument(["Site: a DIRAC site name"])
'''

SETUP_CFG = """[options.entry_points]
console_scripts =
    # WorkloadManagementSystem
    dirac-wms-show-stalled = DIRAC.WorkloadManagementSystem.scripts.dirac_wms_show_stalled:main
"""

V1 = {
    "README.rst": "DIRAC\n=====\n\nDIRAC is a grid middleware; this README introduces it.\n",
    "dirac.cfg": "DIRAC\n{\n  Setup = Production\n}\n",
    "setup.cfg": SETUP_CFG,
    "docs/source/index.rst": "Index\n=====\n\nThe DIRAC documentation index page.\n",
    "docs/source/AdministratorGuide/stalled.rst": (
        "Stalled jobs\n============\n\nThe StalledJobAgent declares jobs Stalled after "
        "StalledTimeHours without a heartbeat from the pilot.\n"
    ),
    "docs/source/AdministratorGuide/old.rst": "Old page\n========\n\nA zeppelin page.\n",
    "docs/source/conf.py": "project = 'DIRAC'\n",
    "src/DIRAC/WorkloadManagementSystem/ConfigTemplate.cfg": "Agents\n{\n  StalledJobAgent\n  {\n    StalledTimeHours = 2\n  }\n}\n",
    "src/DIRAC/WorkloadManagementSystem/scripts/dirac_wms_show_stalled.py": SCRIPT,
    "tests/test_x.rst": "not documentation\n",
}

DIRACX = {
    "README.md": "# DiracX\n\nDiracX is the next DIRAC; its README introduces it.\n",
    "docs/admin/stalled.md": "# Stalled jobs in DiracX\n\nDiracX marks jobs stalled by a "
    "heartbeat timeout set in the job settings.\n",
    "docs/empty.md": "",
}


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _repo(mirror: Path, name: str, files: dict[str, str], tag: str | None = None) -> Path:
    """A bare repository ``mirror/<name>.git`` holding ``files``; returns its work clone."""
    bare = mirror / f"{name}.git"
    work = mirror.parent / f"work-{name}"
    _git(mirror.parent, "init", "-q", "--bare", str(bare))
    _git(mirror.parent, "clone", "-q", str(bare), str(work))
    _commit(work, files, tag)
    return work


def _commit(work: Path, files: dict[str, str | None], tag: str | None = None) -> None:
    for rel, text in files.items():
        path = work / rel
        if text is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "docs")
    if tag:
        _git(work, "tag", tag)
    _git(work, "push", "-q", "origin", "HEAD", "--tags")


@pytest.fixture
def env(tmp_path, models_data_dir, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("DIRAC_MCP_DATA_DIR", str(data))
    monkeypatch.setenv("DIRAC_MCP_INDEX_PATH", str(tmp_path / "index"))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    return tmp_path, mirror


def _settings(tmp_path, models_data_dir):
    from dirac_docs_mcp.config import load_settings

    return load_settings(data_dir=models_data_dir, index_path=tmp_path / "index")


def _manifest(settings):
    with open_store(settings) as store:
        return store.manifest()


def test_sync_fetch_index_update_rename_delete_and_ref(env, models_data_dir, capsys):
    tmp_path, mirror = env
    work = _repo(mirror, "DIRAC", V1, tag="v1.0")
    _repo(mirror, "diracx", DIRACX)
    settings = _settings(tmp_path, models_data_dir)

    assert main(["sources", "sync", "DIRAC", "diracx", "--mirror", str(mirror)]) == 0
    out = capsys.readouterr().out
    assert "fetched DIRAC: master@" in out or "fetched DIRAC: main@" in out
    keys = set(_manifest(settings))
    assert keys == {
        "DIRAC/README.rst",
        "DIRAC/dirac.cfg",
        "DIRAC/docs/source/index.rst",
        "DIRAC/docs/source/AdministratorGuide/stalled.rst",
        "DIRAC/docs/source/AdministratorGuide/old.rst",
        "DIRAC/src/DIRAC/WorkloadManagementSystem/ConfigTemplate.cfg",
        "DIRAC/_generated/commands/dirac-wms-show-stalled.txt",
        "diracx/README.md",
        "diracx/docs/admin/stalled.md",
    }  # the shared snapshot's keys; conf.py, tests/, setup.cfg, scripts and empty files not taken
    data = Path(tmp_path / "data" / "sources")
    help_text = (data / "DIRAC/docs/_generated/commands/dirac-wms-show-stalled.txt").read_text()
    assert "  -S --Site <value>                 : the site to look at" in help_text
    assert "Arguments:\n\n  Site: a DIRAC site name" in help_text

    with Runtime(settings) as rt:
        # the same question, two doc sets, two answers
        dirac = search_docs(rt, "how are stalled jobs detected", 3, doc_set="dirac").hits
        diracx = search_docs(rt, "how are stalled jobs detected", 3, doc_set="diracx").hits
        assert dirac and all(h.source.startswith("DIRAC/") for h in dirac)
        assert diracx and all(h.source.startswith("diracx/") for h in diracx)
        assert dirac[0].doc_set == "DIRAC" and dirac[0].version.startswith(("master@", "main@"))
        text, _ = read_document(rt, "dirac-docs://DIRAC/docs/source/index.rst")
        assert "documentation index" in text
        # answer_question keeps to the doc set too: its passages, evidence and citations
        # (evidence mode: the check does not depend on a generator)
        for doc_set, prefix in (("diracx", "diracx/"), ("DIRAC", "DIRAC/")):
            answer = answer_question(
                rt, "How are stalled jobs detected?", 3, mode="evidence", doc_set=doc_set
            )
            assert answer.passages and all(p.source.startswith(prefix) for p in answer.passages)
            assert all(e.source.startswith(prefix) for e in answer.evidence)
            assert all(c.source.startswith(prefix) for c in answer.citations)

    # upstream renames one page, deletes another, edits a third, and tags a release
    (work / "docs/source/AdministratorGuide/stalled.rst").rename(
        work / "docs/source/AdministratorGuide/stalled_jobs.rst"
    )
    _commit(
        work,
        {
            "docs/source/AdministratorGuide/old.rst": None,
            "docs/source/index.rst": "Index\n=====\n\nRelease two of the index page.\n",
        },
        tag="v2.0",
    )
    assert main(["sources", "sync", "DIRAC"]) == 0  # the mirror is remembered
    out = capsys.readouterr().out
    assert "+1 ~1 -2" in out and "1 unchanged" not in out
    manifest = _manifest(settings)
    assert "DIRAC/docs/source/AdministratorGuide/stalled_jobs.rst" in manifest
    assert "DIRAC/docs/source/AdministratorGuide/stalled.rst" not in manifest
    assert "DIRAC/docs/source/AdministratorGuide/old.rst" not in manifest
    assert "diracx/README.md" in manifest  # another doc set is left alone
    with Runtime(settings) as rt:
        assert not search_docs(rt, "zeppelin", 5, doc_set="DIRAC").hits or all(
            "zeppelin" not in h.text for h in search_docs(rt, "zeppelin", 5, doc_set="DIRAC").hits
        )

    # pin the older release: the index follows it back
    assert main(["sources", "sync", "DIRAC", "--ref", "v1.0"]) == 0
    assert "fetched DIRAC: v1.0@" in capsys.readouterr().out
    manifest = _manifest(settings)
    assert "DIRAC/docs/source/AdministratorGuide/old.rst" in manifest
    assert manifest["DIRAC/README.rst"].version.startswith("v1.0@")  # relabelled, not re-embedded

    assert main(["sources", "list"]) == 0
    listing = capsys.readouterr().out
    assert "DIRAC        v1.0" in listing and "Pilot" in listing and "not synced" in listing


def test_add_remove_user_set_and_plain_folder(env, models_data_dir, capsys):
    tmp_path, _ = env
    vo = tmp_path / "vo-docs"
    (vo / "guide").mkdir(parents=True)
    (vo / "guide/jobs.md").write_text("# Our VO\n\nSubmit jobs to the LHCb-like VO queue.\n")
    (vo / "notes.tex").write_text("not taken")
    settings = _settings(tmp_path, models_data_dir)
    assert main(["sources", "add", "myvo", str(vo), "--include", "guide/**/*.md"]) == 0
    assert main(["sources", "sync", "myvo"]) == 0
    assert set(_manifest(settings)) == {"myvo/guide/jobs.md"}
    assert "myvo" in capsys.readouterr().out
    assert main(["sources", "remove", "myvo"]) == 0
    assert _manifest(settings) == {}
    assert main(["sources", "sync", "myvo"]) == 5  # gone: not found


def test_sync_while_the_index_is_held(env, models_data_dir, capsys):
    tmp_path, mirror = env
    _repo(mirror, "Pilot", {"README.md": "# Pilot\n\nThe DIRAC pilot bootstraps jobs.\n"})
    settings = _settings(tmp_path, models_data_dir)
    assert main(["sources", "sync", "Pilot", "--mirror", str(mirror)]) == 0
    capsys.readouterr()
    held = open_store(settings)  # what a running 'serve' holds
    try:
        code = main(["sources", "sync", "Pilot"])
        err = capsys.readouterr().err
        assert code == 4
        assert "fetched, not indexed" in err and "sources sync --no-fetch" in err
    finally:
        held.close()
    assert main(["sources", "sync", "Pilot", "--no-fetch"]) == 0
    assert set(_manifest(settings)) == {"Pilot/README.md"}


def test_two_roots_with_the_same_files_keep_both(tmp_path, settings_factory):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, word in ((a, "apricot"), (b, "blueberry")):
        (root / "docs").mkdir(parents=True)
        (root / "README.md").write_text(f"# Readme\n\nThis root is about {word}.\n")
        (root / "docs/index.rst").write_text(f"Index\n=====\n\nThe {word} index.\n")
    settings = settings_factory()
    with Runtime(settings) as rt:
        report = Indexer(rt.store, rt.encoders, settings).run([a, b], progress=False)
        assert report.files_failed == 0 and report.files_indexed == 4
        assert set(rt.store.manifest()) == {
            "a/README.md",
            "a/docs/index.rst",
            "b/README.md",
            "b/docs/index.rst",
        }
        text, _ = read_document(rt, "b/README.md")
        assert "blueberry" in text


def test_index_a_file_inside_an_indexed_folder_keeps_the_folder(tmp_path, settings_factory):
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    for rel in ("a.md", "b.md", "sub/c.md"):
        (corpus / rel).write_text(f"# {rel}\n\nText of {rel}.\n")
    settings = settings_factory()
    with Runtime(settings) as rt:
        indexer = Indexer(rt.store, rt.encoders, settings)
        indexer.run([corpus], progress=False)
        (corpus / "a.md").write_text("# a\n\nNew text of a.\n")
        report = indexer.run([corpus / "a.md"], progress=False)
        assert report.files_indexed == 1 and report.files_deleted == 0
        (corpus / "sub/c.md").unlink()
        report = indexer.run([corpus / "sub"], progress=False)
        assert report.files_deleted == 1
        assert set(rt.store.manifest()) == {"a.md", "b.md"}  # keys unchanged, b kept
        assert rt.store.roots() == [str(corpus.resolve())]


def test_command_help_matches_the_snapshot_format():
    text = command_help("dirac-wms-show-stalled", SCRIPT, "src/x.py")
    assert text.startswith("dirac-wms-show-stalled\n======================\n\nShow the stalled")
    assert "  --all                          : every site" in text
