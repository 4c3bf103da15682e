"""One query log shared by two real server processes at once: a stdio server and an HTTP
server with two client sessions, each calling the tools concurrently. Every call is one
whole line; stdout of both servers carries nothing but protocol."""

from __future__ import annotations

import json
import os
import shutil
import sys

import anyio
import pytest
from mcp import Client, StdioServerParameters

from dirac_docs_mcp.query_log import parse_line

from ..node.http_server import http_server

pytestmark = pytest.mark.anyio
CALLS = 12  # per client


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def test_stdio_and_http_sessions_append_to_one_log(fixture_index, tmp_path, monkeypatch):
    settings, _ = fixture_index
    log = tmp_path / "queries.jsonl"
    monkeypatch.setenv("DIRAC_MCP_QUERY_LOG", str(log))
    # the embedded index admits one process: the stdio server reads a copy
    stdio_index = shutil.copytree(settings.index_path, tmp_path / "index-copy")
    env = dict(
        os.environ,
        DIRAC_MCP_DATA_DIR=str(settings.data_dir),
        DIRAC_MCP_INDEX_PATH=str(stdio_index),
        HF_HUB_OFFLINE="1",
    )
    stdio = StdioServerParameters(
        command=sys.executable, args=["-m", "dirac_docs_mcp", "serve"], env=env
    )

    async def calls(client: Client, name: str) -> None:
        for i in range(CALLS):
            if i % 3 == 2:
                result = await client.call_tool(
                    "answer_question",
                    {"question": f"{name} {i}: what is filling mode", "evidence_only": True},
                )
            else:
                result = await client.call_tool(
                    "search_dirac_docs", {"query": f"{name} {i}: stalled jobs", "limit": 2}
                )
            assert not result.is_error, result.content

    with http_server(settings.data_dir, settings.index_path) as served:
        async with (
            Client(stdio, mode="legacy") as over_stdio,
            Client(served.url) as session_a,
            Client(served.url) as session_b,
        ):
            async with anyio.create_task_group() as group:
                group.start_soon(calls, over_stdio, "stdio")
                group.start_soon(calls, session_a, "http-a")
                group.start_soon(calls, session_b, "http-b")
        assert served.stdout_path.read_text() == ""

    entries = [parse_line(line) for line in log.read_bytes().splitlines()]
    assert len(entries) == 3 * CALLS and all(entries)
    questions = sorted(e.question for e in entries)
    assert questions == sorted(
        f"{name} {i}: " + ("what is filling mode" if i % 3 == 2 else "stalled jobs")
        for name in ("stdio", "http-a", "http-b")
        for i in range(CALLS)
    )
    tools = {e.tool for e in entries}
    assert tools == {"search_dirac_docs", "answer_question"}
    assert all(len(e.chunk_ids) == 2 for e in entries if e.tool == "search_dirac_docs")
    assert json.loads(log.read_text().splitlines()[0])["time"].endswith("Z")
