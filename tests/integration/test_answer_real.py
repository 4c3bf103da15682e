"""answer_question end to end with the smallest generator shipped on PyPI (SmolLM2-135M):
retrieval → prompt → constrained JSON → parsed citations, through the MCP in-memory client."""

from __future__ import annotations

import pytest
from mcp import Client

from dirac_docs_mcp.server import build_server

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def test_answer_question_tool_runs_the_real_model(fixture_index):
    settings, _ = fixture_index
    settings = settings.model_copy(
        update={"generator_model": "smollm2-135m", "generator_max_new_tokens": 96}
    )
    progress: list[float] = []

    async def on_progress(done, total, message):
        progress.append(done)

    async with Client(build_server(settings)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["answer_question"].annotations.read_only_hint is True
        result = await client.call_tool(
            "answer_question",
            {"question": "When is a job declared stalled?", "limit": 2},
            progress_callback=on_progress,
        )
        bad = await client.call_tool("answer_question", {"question": "x", "limit": 99})
    assert not result.is_error, result.content[0].text
    answer = result.structured_content
    assert isinstance(answer["answered"], bool)
    assert answer["passages"][0]["source"] == "guide/wms/agents.rst"
    passage_ids = {p["chunk_id"] for p in answer["passages"]}
    assert {c["chunk_id"] for c in answer["citations"]} <= passage_ids  # never cites outside
    assert answer["model"].startswith("smollm2") or "SmolLM" in answer["model"]
    assert answer["timings"]["new_tokens"] > 0 and answer["timings"]["prompt_tokens"] > 100
    if not answer["answered"]:
        assert answer["reason"]
    assert bad.is_error and "limit" in bad.content[0].text
