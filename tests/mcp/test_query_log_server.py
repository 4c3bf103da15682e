"""The query log seen from an MCP client: the real server (build_server, which the stdio
transport and the HTTP app both serve), the SDK's in-memory Client, the fixture index."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from mcp import Client

from dirac_docs_mcp.query_log import FIELDS
from dirac_docs_mcp.server import build_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def jsonl_files(*roots: Path) -> set[Path]:
    return {p for root in roots for p in root.rglob("*") if p.is_file() and ".jsonl" in p.name}


async def test_off_by_default_writes_nothing(fixture_index, tmp_path, monkeypatch):
    settings, _ = fixture_index
    assert settings.query_log is None
    monkeypatch.chdir(tmp_path)
    roots = (tmp_path, settings.data_dir, settings.index_path)
    before = jsonl_files(*roots)
    async with Client(build_server(settings)) as client:
        search = await client.call_tool("search_dirac_docs", {"query": "stalled jobs"})
        answer = await client.call_tool(
            "answer_question", {"question": "what is filling mode", "evidence_only": True}
        )
    assert not search.is_error and not answer.is_error
    assert jsonl_files(*roots) == before


async def test_both_tools_append_exactly_the_documented_fields(fixture_index, tmp_path):
    settings, _ = fixture_index
    path = tmp_path / "logs" / "queries.jsonl"
    path.parent.mkdir()
    logged = settings.model_copy(update={"query_log": path})
    async with Client(build_server(logged)) as client:
        search = await client.call_tool(
            "search_dirac_docs", {"query": "when is a job declared stalled", "limit": 3}
        )
        answered = await client.call_tool(
            "answer_question",
            {"question": "What is filling mode for pilots?", "evidence_only": True},
        )
        abstained = await client.call_tool(
            "answer_question",
            {"question": "What is the default of ZorgTimeoutSeconds?", "evidence_only": True},
        )
        failed = await client.call_tool("search_dirac_docs", {"query": "   "})
    assert failed.is_error  # a tool error: no line
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 3
    assert all(tuple(line) == FIELDS for line in lines)

    hits = search.structured_content["hits"]
    assert lines[0]["tool"] == "search_dirac_docs"
    assert lines[0]["question"] == "when is a job declared stalled"
    assert lines[0]["chunk_ids"] == [h["chunk_id"] for h in hits]
    assert lines[0]["sources"] == [h["source"] for h in hits]
    assert lines[0]["sources"][0] == "guide/wms/agents.rst"
    assert lines[0]["answered"] is None

    for line, result in ((lines[1], answered), (lines[2], abstained)):
        passages = result.structured_content["passages"]
        assert line["tool"] == "answer_question"
        assert line["answered"] is result.structured_content["answered"]
        assert line["chunk_ids"] == [p["chunk_id"] for p in passages]
        assert line["sources"] == [p["source"] for p in passages]
    assert lines[1]["answered"] is True and "guide/wms/pilots.md" in lines[1]["sources"]
    assert lines[2]["answered"] is False and lines[2]["chunk_ids"]
    # nothing else: no answer text, no passage text
    text = path.read_text()
    assert "Filling mode" not in text and "StalledJobAgent hunts" not in text
    assert all(line["time"].endswith("Z") for line in lines)


async def test_an_unwritable_log_does_not_fail_the_call(fixture_index, tmp_path, caplog):
    settings, _ = fixture_index
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    logged = settings.model_copy(update={"query_log": blocker / "queries.jsonl"})
    with caplog.at_level(logging.WARNING, logger="dirac_docs_mcp.query_log"):
        async with Client(build_server(logged)) as client:
            first = await client.call_tool("search_dirac_docs", {"query": "stalled jobs"})
            second = await client.call_tool(
                "answer_question", {"question": "what is filling mode", "evidence_only": True}
            )
    assert not first.is_error and first.structured_content["hits"]
    assert not second.is_error and second.structured_content["passages"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "dirac_docs_mcp.query_log"]
    assert len(warnings) == 1 and "could not append" in warnings[0]
