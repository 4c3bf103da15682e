"""``eval --answers --resume`` keeps every row of the run file it resumes, whatever order or
``--max-questions`` the new run uses. Evidence mode answers from the real fixture index
without a generator, so the test runs in seconds and its rows are real."""

from __future__ import annotations

import json

from dirac_docs_mcp.cli import main

QUESTIONS = [
    {"id": "q1", "question": "When is a job declared stalled?", "source": "guide/wms/agents.rst"},
    {"id": "q2", "question": "How do I get a proxy?", "keyphrases": ["proxy"]},
    {"id": "q3", "question": "How do I post to a Slack channel?", "kind": "unanswerable"},
]


def test_resume_in_another_order_and_shorter_keeps_all_rows(fixture_index, tmp_path, monkeypatch):
    settings, _ = fixture_index
    monkeypatch.setenv("DIRAC_MCP_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DIRAC_MCP_INDEX_PATH", str(settings.index_path))
    monkeypatch.setenv("DIRAC_MCP_ANSWER_MODE", "evidence")
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    run = tmp_path / "run.json"

    assert main(["eval", str(questions), "--answers", "--json", str(run)]) == 0
    first = json.loads(run.read_text())
    assert [r["id"] for r in first["rows"]] == ["q1", "q2", "q3"]
    q3 = next(r for r in first["rows"] if r["id"] == "q3")
    assert q3["answered"] is False  # 'Slack' is in no passage: abstains

    # the same questions in another order, only the first one asked for, resumed
    questions.write_text("".join(json.dumps(q) + "\n" for q in reversed(QUESTIONS)))
    argv = ["eval", str(questions), "--answers", "--json", str(run), "--resume"]
    assert main([*argv, "--max-questions", "1"]) == 0
    second = json.loads(run.read_text())
    assert sorted(r["id"] for r in second["rows"]) == ["q1", "q2", "q3"]
    assert {r["id"]: r for r in second["rows"]} == {r["id"]: r for r in first["rows"]}
    assert second["summary"]["questions"] == 3
