"""``dirac-docs-mcp log export`` and ``log purge`` from a subprocess, on a log written by the
real writer with real search results from the fixture index."""

from __future__ import annotations

import json

from dirac_docs_mcp.query_log import QueryLog
from dirac_docs_mcp.runtime import Runtime
from dirac_docs_mcp.schemas import SearchHit
from dirac_docs_mcp.tools.search import search_docs

from .test_cli_exit_codes import _env, assert_one_line_error, run_cli

STALLED = "When is a job declared stalled?"
PII = (
    "Job from /DC=ch/DC=cern/OU=Users/CN=jdoe/CN=Jane Doe (jane.doe@cern.ch) fails with "
    "Bearer 3f9aKx7QpL2mZt8wQ on lbvobox12.cern.ch: is dirac-wms-job-submit wrong?"
)
PII_OTHER_USER = PII.replace("jdoe/CN=Jane Doe", "asmith/CN=Ann Smith").replace(
    "jane.doe@", "ann.smith@"
)
TERMS = "How is DIRAC.WorkloadManagementSystem.Agent.StalledJobAgent set on LCG.CERN.ch?"


def write_log(settings, path) -> dict[str, list[SearchHit]]:
    """Calls as the server logs them, through a rotation (three small files)."""
    log = QueryLog(path, max_bytes=2_000, rotated=5)
    with Runtime(settings) as runtime:
        found = {
            q: search_docs(runtime, q, 3).hits
            for q in (STALLED, PII, TERMS, "what is filling mode")
        }
    gone = found["what is filling mode"][0].model_copy(
        update={"chunk_id": "00000000-0000-0000-0000-000000000000"}
    )
    calls = [
        ("search_dirac_docs", STALLED, found[STALLED], None),
        ("answer_question", PII, found[PII], False),
        ("search_dirac_docs", TERMS, found[TERMS], None),
        ("answer_question", "  when is a JOB declared stalled  ", found[STALLED][:1], True),
        ("search_dirac_docs", PII_OTHER_USER, found[PII], None),  # same once masked
        ("search_dirac_docs", "what is filling mode", [gone, *found["what is filling mode"]], None),
        ("search_dirac_docs", "when is a job declared stalled!!", [], None),  # no passages
        ("search_dirac_docs", "zzz nothing matches", [], None),
    ]
    for tool, question, hits, answered in calls * 3:
        assert log.record(tool, question, hits, answered)
    with path.open("a") as f:
        f.write('{"not": "a log line"}\n')
    assert len(log.files()) >= 3  # export must read the rotated files too
    return found


def test_export_merges_masks_and_fetches_passages(fixture_index, tmp_path):
    settings, _ = fixture_index
    path = tmp_path / "queries.jsonl"
    found = write_log(settings, path)
    n_files = len(QueryLog(path, 2_000).files())
    out = tmp_path / "export" / "candidates.jsonl"
    env = _env(
        settings,
        DIRAC_MCP_QUERY_LOG=str(path),
        DIRAC_MCP_QUERY_LOG_MASK_HOSTS='["cern.ch"]',
    )
    result = run_cli("log", "export", str(out), env=env)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [set(r) for r in records] == [
        {"question", "passages", "count", "first_seen", "last_seen"}
    ] * 5
    by_question = {r["question"]: r for r in records}

    stalled = by_question[STALLED]  # first-seen wording, 4 wordings x 3 rounds merged
    assert stalled["count"] == 9
    assert stalled["first_seen"] < stalled["last_seen"]
    # the latest call that returned passages: the answer_question call with one passage
    assert [p["chunk_id"] for p in stalled["passages"]] == [found[STALLED][0].chunk_id]
    assert stalled["passages"][0]["source"] == "guide/wms/agents.rst"
    assert "StalledJobAgent hunts for stalled jobs" in stalled["passages"][0]["text"]

    masked = (
        "Job from <dn> (<email>) fails with Bearer <token> on <host>: is dirac-wms-job-submit "
        "wrong?"
    )
    assert by_question[masked]["count"] == 6  # two users' questions, one once masked
    assert [p["chunk_id"] for p in by_question[masked]["passages"]] == [
        h.chunk_id for h in found[PII]
    ]
    text = out.read_text()
    for secret in ("jdoe", "Jane Doe", "asmith", "cern.ch", "3f9aKx7QpL2mZt8wQ", "lbvobox12"):
        assert secret not in text

    assert by_question[TERMS]["count"] == 3  # DIRAC names untouched
    filling = by_question["what is filling mode"]["passages"]
    assert "00000000-0000-0000-0000-000000000000" not in {p["chunk_id"] for p in filling}
    assert len(filling) == len(found["what is filling mode"])
    assert by_question["zzz nothing matches"]["passages"] == []

    assert result.stdout.splitlines() == [
        f"read 24 logged calls from {n_files} file(s) (1 unreadable lines skipped)",
        f"5 distinct questions (19 repeats merged) -> {out}",
        "10 passages; 1 no longer in the index (left out); 1 questions without passages",
        "masked: 6 dn, 6 email, 6 host, 6 token",
    ]


def test_purge_removes_every_file_and_log_commands_fail_clearly(fixture_index, tmp_path):
    settings, _ = fixture_index
    path = tmp_path / "queries.jsonl"
    log = QueryLog(path, max_bytes=500, rotated=2)
    for i in range(20):
        log.record("search_dirac_docs", f"question {i}", [], None)
    files = log.files()
    assert len(files) == 3
    env = _env(settings, DIRAC_MCP_QUERY_LOG=str(path))
    purged = run_cli("log", "purge", env=env)
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.splitlines() == [
        *(f"removed {f}" for f in files),
        "purged the query log: 3 file(s) removed",
    ]
    assert not any(f.exists() for f in files)

    missing = run_cli("log", "purge", env=env)
    assert_one_line_error(missing, 2, "does not exist")
    missing = run_cli("log", "export", str(tmp_path / "out.jsonl"), env=env)
    assert_one_line_error(missing, 2, "does not exist")
    assert not (tmp_path / "out.jsonl").exists()
    for args in (("log", "purge"), ("log", "export", str(tmp_path / "out.jsonl"))):
        unset = run_cli(*args, env=_env(settings))
        assert_one_line_error(unset, 2, "query_log setting is unset", "DIRAC_MCP_QUERY_LOG")
