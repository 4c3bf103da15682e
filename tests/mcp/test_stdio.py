"""The real wire: the server as a stdio subprocess, driven by the SDK's stdio client."""

from __future__ import annotations

import os
import sys
import time

import pytest
from mcp import Client, StdioServerParameters

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def _params(settings) -> StdioServerParameters:
    env = dict(os.environ)
    env.update(
        DIRAC_MCP_DATA_DIR=str(settings.data_dir),
        DIRAC_MCP_INDEX_PATH=str(settings.index_path),
        HF_HUB_OFFLINE="1",
    )
    return StdioServerParameters(
        command=sys.executable, args=["-m", "dirac_docs_mcp", "serve"], env=env
    )


async def test_stdio_handshake_is_fast_and_search_works(fixture_index):
    settings, _ = fixture_index
    started = time.perf_counter()
    async with Client(_params(settings), mode="legacy") as client:
        tools = (await client.list_tools()).tools
        listed = time.perf_counter() - started
        result = await client.call_tool("search_dirac_docs", {"query": "stalled jobs heartbeat"})
        bad = await client.call_tool("search_dirac_docs", {"query": "stalled", "limit": 0})
    assert {t.name for t in tools} == {"search_dirac_docs", "answer_question", "generate_qa_pairs"}
    # no model is loaded before the first search: start-up is interpreter + imports
    assert listed < 15, f"tools/list took {listed:.1f}s"
    assert not result.is_error
    assert result.structured_content["hits"][0]["source"] == "guide/wms/agents.rst"
    assert bad.is_error and "limit" in bad.content[0].text


async def test_second_embedded_server_fails_fast_with_clear_message(fixture_index):
    settings, _ = fixture_index
    async with Client(_params(settings), mode="legacy") as first:
        await first.call_tool("search_dirac_docs", {"query": "pilots"})  # opens the index
        async with Client(_params(settings), mode="legacy") as second:
            result = await second.call_tool("search_dirac_docs", {"query": "pilots"})
    assert result.is_error
    assert "in use" in result.content[0].text
