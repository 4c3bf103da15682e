"""The query log's file: one locked append per line from several processes, rotation by
size under the same lock, purge, a write failure that only warns; the settings that turn it
on. Real files, real processes (multiprocessing, spawn)."""

from __future__ import annotations

import json
import logging
import multiprocessing
import sys
from pathlib import Path

import pytest

from dirac_docs_mcp.config import load_settings
from dirac_docs_mcp.errors import ConfigError
from dirac_docs_mcp.query_log import FIELDS, QueryLog, parse_line
from dirac_docs_mcp.schemas import SearchHit


def hits(n: int, tag: str = "") -> list[SearchHit]:
    return [
        SearchHit(
            rank=i + 1,
            text="passage text, never logged",
            source=f"guide/doc{i}{tag}.rst",
            section="Guide",
            score=1.0 / (i + 1),
            chunk_id=f"{i:08d}-0000-0000-0000-{tag:0>12}",
            link=f"dirac-docs://guide/doc{i}{tag}.rst",
        )
        for i in range(n)
    ]


def lines_of(files: list[Path]) -> list[str]:
    return [line for f in files for line in f.read_text().splitlines()]


def _write_lines(path: str, max_bytes: int, rotated: int, worker: int, n: int, start) -> None:
    """One writer process: n lines, each a little longer than the last (rotation points
    differ between processes); exit code 1 if any append failed."""
    log = QueryLog(Path(path), max_bytes, rotated)
    start.wait()
    failed = 0
    for i in range(n):
        question = f"worker {worker} question {i} " + "x" * (i % 50)
        failed += not log.record("search_dirac_docs", question, hits(3, str(worker)), None)
    sys.exit(1 if failed else 0)


def run_writers(path: Path, max_bytes: int, rotated: int, workers: int = 4, n: int = 200):
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [
        ctx.Process(target=_write_lines, args=(str(path), max_bytes, rotated, w, n, start))
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    start.set()  # all at once: the appends interleave
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * workers


def expected_questions(workers: int = 4, n: int = 200) -> set[str]:
    return {f"worker {w} question {i} " + "x" * (i % 50) for w in range(workers) for i in range(n)}


def test_a_line_holds_exactly_the_documented_fields(tmp_path):
    log = QueryLog(tmp_path / "q.jsonl", max_bytes=1_000_000)
    assert log.record("answer_question", "What is a pilot?", hits(2), False)
    assert log.record("search_dirac_docs", "pilot \ud800 surrogate", [], None)
    first, second = (json.loads(line) for line in lines_of([log.path]))
    assert tuple(first) == FIELDS
    assert first["tool"] == "answer_question" and first["answered"] is False
    assert first["question"] == "What is a pilot?"
    assert first["chunk_ids"] == [h.chunk_id for h in hits(2)]
    assert first["sources"] == ["guide/doc0.rst", "guide/doc1.rst"]
    assert first["time"].endswith("Z") and first["time"][10] == "T"
    assert "passage text" not in log.path.read_text()
    assert second["question"] == "pilot \ud800 surrogate" and second["chunk_ids"] == []
    assert log.path.stat().st_mode & 0o777 == 0o600  # users' words: private


def test_four_processes_append_800_whole_lines(tmp_path):
    path = tmp_path / "q.jsonl"
    run_writers(path, max_bytes=100_000_000, rotated=1)
    lines = lines_of([path])
    assert len(lines) == 800
    entries = [parse_line(line.encode()) for line in lines]
    assert all(entries)
    assert {e.question for e in entries} == expected_questions()


def test_concurrent_appends_across_rotations_lose_no_line(tmp_path):
    """4 x 200 lines of ~300 bytes (~240 kB) through 64 kB files: several rotations while
    the writers race; 6 files hold it all, so every line must be there exactly once."""
    path = tmp_path / "q.jsonl"
    run_writers(path, max_bytes=64_000, rotated=5)
    log = QueryLog(path, 64_000, 5)
    files = log.files()
    assert len(files) >= 4, files  # it did rotate, more than once
    assert all(f.stat().st_size <= 64_000 for f in files)
    lines = lines_of(files)
    assert len(lines) == 800
    entries = [parse_line(line.encode()) for line in lines]
    assert all(entries)
    assert sorted(e.question for e in entries) == sorted(expected_questions())
    # entries() reads the files oldest first, as files() lists them
    assert [e.question for e in log.entries()] == [e.question for e in entries]


def test_rotation_keeps_the_size_bound_and_the_newest_lines(tmp_path):
    log = QueryLog(tmp_path / "q.jsonl", max_bytes=10_000, rotated=1)
    for i in range(1000):
        assert log.record("search_dirac_docs", f"question {i:04d}", hits(2), None)
    files = log.files()
    assert files == [tmp_path / "q.jsonl.1", tmp_path / "q.jsonl"]
    assert all(f.stat().st_size <= 10_000 for f in files)
    kept = [json.loads(line)["question"] for line in lines_of(files)]
    assert kept == [f"question {i:04d}" for i in range(1000 - len(kept), 1000)]
    assert len(kept) > 10_000 // 250  # path.1 is nearly full: rotation happens at the bound


def test_a_line_larger_than_the_bound_is_written_alone(tmp_path):
    log = QueryLog(tmp_path / "q.jsonl", max_bytes=500, rotated=2)
    log.record("search_dirac_docs", "short", [], None)
    log.record("search_dirac_docs", "long " * 200, [], None)
    log.record("search_dirac_docs", "after", [], None)
    questions = [
        [json.loads(x)["question"] for x in f.read_text().splitlines()] for f in log.files()
    ]
    assert questions == [["short"], ["long " * 200], ["after"]]


def test_purge_removes_the_log_and_every_rotated_file(tmp_path):
    log = QueryLog(tmp_path / "q.jsonl", max_bytes=1_000, rotated=3)
    for i in range(100):
        log.record("search_dirac_docs", f"question {i}", hits(1), None)
    (tmp_path / "q.jsonl.9").write_text("{}\n")  # left by an earlier, larger setting
    (tmp_path / "q.jsonl.bak").write_text("not ours\n")
    before = log.files()
    assert len(before) == 5
    removed = log.purge()
    assert sorted(removed) == sorted(before)
    assert log.files() == [] and not any(p.exists() for p in before)
    assert (tmp_path / "q.jsonl.bak").exists()
    assert log.record("search_dirac_docs", "after purge", [], None)  # starts a new file
    assert len(lines_of(log.files())) == 1


def test_a_write_failure_never_raises_and_warns_once(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    log = QueryLog(blocker / "q.jsonl", max_bytes=1_000_000)  # its folder is a file
    with caplog.at_level(logging.WARNING, logger="dirac_docs_mcp.query_log"):
        assert log.record("search_dirac_docs", "q1", hits(1), None) is False
        assert log.record("answer_question", "q2", hits(1), True) is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "could not append" in warnings[0].getMessage()


def test_parse_line_refuses_lines_that_are_not_ours():
    good = {
        "time": "2025-01-01T00:00:00.000Z",
        "tool": "search_dirac_docs",
        "question": "q",
        "chunk_ids": ["a"],
        "sources": ["s"],
        "answered": None,
    }
    assert parse_line(json.dumps(good).encode()) is not None
    for bad in (
        {**good, "extra": 1},
        {**good, "tool": "generate_qa_pairs"},
        {**good, "answered": 1},
        {**good, "sources": []},
    ):
        assert parse_line(json.dumps(bad).encode()) is None
    assert parse_line(b'{"time": "half a line') is None


def test_settings_off_by_default_and_paths(tmp_path, monkeypatch):
    for key in ("DIRAC_MCP_QUERY_LOG", "DIRAC_MCP_QUERY_LOG_MASK_HOSTS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DIRAC_MCP_CONFIG_FILE", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")
    settings = load_settings(data_dir=tmp_path)
    assert settings.query_log is None and QueryLog.from_settings(settings) is None
    monkeypatch.setenv("DIRAC_MCP_QUERY_LOG", "  ")
    assert load_settings(data_dir=tmp_path).query_log is None
    monkeypatch.setenv("DIRAC_MCP_QUERY_LOG", "logs/queries.jsonl")
    assert load_settings(data_dir=tmp_path).query_log == tmp_path / "logs/queries.jsonl"
    monkeypatch.setenv("DIRAC_MCP_QUERY_LOG", "/var/tmp/q.jsonl")
    monkeypatch.setenv("DIRAC_MCP_QUERY_LOG_MASK_HOSTS", '["*.CERN.ch", "vobox.example.org"]')
    settings = load_settings(data_dir=tmp_path)
    assert settings.query_log == Path("/var/tmp/q.jsonl")
    assert settings.query_log_mask_hosts == ["cern.ch", "vobox.example.org"]
    assert settings.query_log_max_bytes == 10_000_000 and settings.query_log_rotated_files == 1
    monkeypatch.setenv("DIRAC_MCP_QUERY_LOG_MASK_HOSTS", '["not a host"]')
    with pytest.raises(ConfigError, match="query_log_mask_hosts"):
        load_settings(data_dir=tmp_path)
