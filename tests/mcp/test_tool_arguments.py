"""Tool arguments are strict (a bool is not an int), bad output paths say why, and
generations beyond max_concurrent_generations are refused at once with "busy"."""

from __future__ import annotations

import time

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver.exceptions import ToolError

from dirac_docs_mcp.server import GenerationSlots, build_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("search_dirac_docs", {"query": "stalled", "limit": True}),
        ("search_dirac_docs", {"query": "stalled", "limit": "3"}),
        ("answer_question", {"question": "what is a pilot", "limit": True}),
        ("generate_qa_pairs", {"output": "x.jsonl", "n_chunks": True}),
        ("generate_qa_pairs", {"output": "x.jsonl", "all_chunks": 1}),
        ("generate_qa_pairs", {"output": "x.jsonl", "seed": False}),
    ],
)
async def test_bool_or_string_for_a_number_is_a_tool_error(fixture_index, tool, arguments):
    settings, _ = fixture_index
    async with Client(build_server(settings)) as client:
        result = await client.call_tool(tool, arguments)
    assert result.is_error


async def test_integer_limit_still_works(fixture_index):
    settings, _ = fixture_index
    async with Client(build_server(settings)) as client:
        result = await client.call_tool("search_dirac_docs", {"query": "stalled", "limit": 2})
    assert not result.is_error
    assert len(result.structured_content["hits"]) == 2


async def test_nul_byte_in_output_path_says_why(fixture_index, tmp_path):
    settings, _ = fixture_index
    settings = settings.model_copy(update={"qa_output_dir": tmp_path / "qa"})
    async with Client(build_server(settings)) as client:
        result = await client.call_tool("generate_qa_pairs", {"output": "a\x00b.jsonl"})
    assert result.is_error
    assert "NUL" in result.content[0].text


def test_generation_slots_limit_and_release():
    slots = GenerationSlots(2)
    assert slots.try_acquire() and slots.try_acquire()
    assert not slots.try_acquire()
    slots.release()
    assert slots.try_acquire()


async def test_generation_slots_context_refuses_when_full():
    slots = GenerationSlots(1)
    async with slots.slot():
        with pytest.raises(ToolError, match="busy"):
            async with slots.slot():
                pass
    async with slots.slot():  # released after use
        pass


async def test_generation_beyond_the_cap_is_busy_at_once(fixture_index, tmp_path):
    settings, _ = fixture_index
    settings = settings.model_copy(
        update={"generator_model": str(tmp_path / "missing-model"), "qa_output_dir": tmp_path}
    )
    slots = GenerationSlots(1)
    async with Client(build_server(settings, generation_slots=slots)) as client:
        assert slots.try_acquire()  # a generation in flight
        started = time.monotonic()
        with anyio.fail_after(10):
            busy = await client.call_tool("answer_question", {"question": "what is a pilot"})
            busy_qa = await client.call_tool("generate_qa_pairs", {"output": "p.jsonl"})
        assert time.monotonic() - started < 5
        for result in (busy, busy_qa):
            assert result.is_error and "busy" in result.content[0].text
        slots.release()
        # with the slot free the call reaches the generator (a model error here), and the
        # slot is given back afterwards
        with anyio.fail_after(120):
            failed = await client.call_tool("answer_question", {"question": "what is a pilot"})
        assert failed.is_error and "busy" not in failed.content[0].text
        assert slots.try_acquire()
