"""The MCP server through the SDK's in-memory Client: real index, real models, real protocol
objects (no JSON-RPC framing)."""

from __future__ import annotations

import json

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from dirac_docs_mcp.server import build_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def server(fixture_index):
    settings, _corpus = fixture_index
    return build_server(settings)


async def test_tools_list_describes_search(server):
    async with Client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    tool = tools["search_dirac_docs"]
    assert tool.annotations.read_only_hint is True
    assert tool.annotations.destructive_hint is False
    props = tool.input_schema["properties"]
    assert props["limit"]["maximum"] == 20 and props["limit"]["minimum"] == 1
    assert props["query"]["minLength"] == 1
    assert "hits" in tool.output_schema["properties"]
    assert "DIRAC" in tool.description


async def test_search_returns_cited_hits(server):
    async with Client(server) as client:
        result = await client.call_tool(
            "search_dirac_docs", {"query": "when is a job declared stalled", "limit": 3}
        )
    assert not result.is_error
    hits = result.structured_content["hits"]
    assert 1 <= len(hits) <= 3
    top = hits[0]
    assert top["source"] == "guide/wms/agents.rst"
    assert top["link"] == "dirac-docs://guide/wms/agents.rst"
    assert "StalledJobAgent" in top["section"]
    assert top["chunk_id"] and top["rank"] == 1
    text = result.content[0].text
    assert text.startswith("[1] ") and "dirac-docs://guide/wms/agents.rst" in text


async def test_filters_restrict_results(server):
    async with Client(server) as client:
        by_prefix = await client.call_tool(
            "search_dirac_docs", {"query": "jobs", "limit": 10, "source_prefix": "guide/wms"}
        )
        by_section = await client.call_tool(
            "search_dirac_docs", {"query": "pilot", "limit": 10, "section": "filling mode"}
        )
    assert {h["source"] for h in by_prefix.structured_content["hits"]} <= {
        "guide/wms/agents.rst",
        "guide/wms/pilots.md",
    }
    sections = [h["section"].lower() for h in by_section.structured_content["hits"]]
    assert sections and all("filling mode" in s for s in sections)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"query": ""}, "query"),
        ({"query": "   "}, "query is empty"),
        ({"query": "x" * 100_000}, "query"),
        ({"query": "stalled", "limit": 0}, "limit"),
        ({"query": "stalled", "limit": 1_000_000}, "limit"),
        ({"query": "stalled", "source_prefix": "../../etc"}, "source_prefix"),
        ({"query": "stalled", "source_prefix": "/etc"}, "source_prefix"),
        ({"query": "stalled", "unknown_filter": "x"}, ""),
    ],
)
async def test_bad_input_is_a_tool_error(server, arguments, message):
    async with Client(server) as client:
        result = await client.call_tool("search_dirac_docs", arguments)
    if "unknown_filter" in arguments:
        # extra arguments are ignored by the schema; the call must still behave normally
        assert not result.is_error
        return
    assert result.is_error
    assert message in result.content[0].text
    assert "Traceback" not in result.content[0].text


async def test_result_size_is_bounded_for_largest_limit(server):
    async with Client(server) as client:
        result = await client.call_tool("search_dirac_docs", {"query": "job", "limit": 20})
    total = sum(len(h["text"]) for h in result.structured_content["hits"])
    assert total <= 40_000
    assert len(result.content[0].text) < 100_000  # well under 25k tokens


async def test_prompt_injection_in_a_document_is_data(server):
    async with Client(server) as client:
        result = await client.call_tool(
            "search_dirac_docs", {"query": "proxy lifetime renewed on the central servers"}
        )
        tools = (await client.list_tools()).tools
        # what the injected text asks for is refused before anything runs
        write = await client.call_tool(
            "generate_qa_pairs", {"output": "/etc/passwd", "all_chunks": True}
        )
    assert write.is_error and "relative to the QA output folder" in write.content[0].text
    assert not result.is_error
    hit = next(h for h in result.structured_content["hits"] if h["source"] == "notes/injection.md")
    assert "IGNORE ALL PREVIOUS INSTRUCTIONS" in hit["text"]
    assert {t.name for t in tools} == {"search_dirac_docs", "answer_question", "generate_qa_pairs"}


async def test_document_resource_reads_indexed_file(server, fixture_index):
    async with Client(server) as client:
        result = await client.read_resource("dirac-docs://guide/wms/pilots.md")
    assert "Filling mode" in result.contents[0].text


@pytest.mark.parametrize(
    "uri",
    [
        "dirac-docs://../../etc/passwd",
        "dirac-docs://%2e%2e/%2e%2e/etc/passwd",
        "dirac-docs://%252e%252e/etc/passwd",
        "dirac-docs:///etc/passwd",
        "dirac-docs://guide/missing.rst",
    ],
)
async def test_document_resource_refuses_escapes(server, uri):
    async with Client(server) as client:
        with pytest.raises(MCPError) as info:
            await client.read_resource(uri)
    message = str(info.value)
    assert "root:" not in message  # never the file's content
    assert any(
        word in message for word in ("Unknown resource", "not an indexed", "relative to an indexed")
    )


async def test_status_resource_and_prompt(server):
    async with Client(server) as client:
        status = json.loads(
            (await client.read_resource("dirac-docs-index://status")).contents[0].text
        )
        prompt = await client.get_prompt("dirac_support", {"question": "How do I renew a proxy?"})
    assert status["files"] == 6 and status["points"] >= 6
    assert status["embedding_model"].startswith("sentence-transformers/all-MiniLM-L6-v2")
    text = prompt.messages[0].content.text
    assert "search_dirac_docs" in text and "How do I renew a proxy?" in text
