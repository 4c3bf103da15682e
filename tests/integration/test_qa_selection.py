"""Chunk selection for generate_qa_pairs on the real fixture index (no generator needed)."""

from __future__ import annotations

import pytest

from dirac_docs_mcp.errors import InvalidInputError
from dirac_docs_mcp.runtime import Runtime
from dirac_docs_mcp.tools.qa_pairs import QASelection, select_chunks


@pytest.fixture
def runtime(fixture_index):
    settings, _ = fixture_index
    with Runtime(settings.model_copy(update={"qa_min_chunk_words": 10})) as rt:
        yield rt


def test_query_selection_follows_the_ranking(runtime):
    chunks, _ = select_chunks(runtime, QASelection(query="stalled jobs heartbeat", n_chunks=2))
    assert len(chunks) == 2
    assert chunks[0].source == "guide/wms/agents.rst"


def test_source_prefix_and_section_narrow_the_choice(runtime):
    by_prefix, _ = select_chunks(runtime, QASelection(source_prefix="guide/wms", n_chunks=50))
    assert by_prefix and {c.source for c in by_prefix} <= {
        "guide/wms/agents.rst",
        "guide/wms/pilots.md",
    }
    by_section, _ = select_chunks(runtime, QASelection(section="filling mode", n_chunks=50))
    assert by_section and all("filling mode" in c.section.lower() for c in by_section)


def test_sample_is_capped_and_seeded(runtime):
    everything, _ = select_chunks(runtime, QASelection(all_chunks=True, n_chunks=1000))
    assert len(everything) >= 4
    one = select_chunks(runtime, QASelection(all_chunks=True, n_chunks=3, seed=5))[0]
    again = select_chunks(runtime, QASelection(all_chunks=True, n_chunks=3, seed=5))[0]
    assert len(one) == 3 and [c.id for c in one] == [c.id for c in again]
    assert {c.id for c in one} <= {c.id for c in everything}


def test_tiny_chunks_are_skipped_and_counted(fixture_index):
    settings, _ = fixture_index
    strict = settings.model_copy(update={"qa_min_chunk_words": 10_000 // 10})
    with Runtime(strict) as rt:
        chunks, skipped = select_chunks(rt, QASelection(all_chunks=True, n_chunks=100))
    assert chunks == [] and skipped >= 4


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (QASelection(), "choose chunks"),
        (QASelection(all_chunks=True, n_chunks=0), "n_chunks"),
        (QASelection(source_prefix="../etc", n_chunks=3), "relative"),
    ],
)
def test_bad_selections_are_refused(runtime, selection, message):
    with pytest.raises(InvalidInputError, match=message):
        select_chunks(runtime, selection)
