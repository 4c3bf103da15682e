"""The output-size caps on a corpus big enough to reach them: 20 hits of long chunks are
more text than the default result cap (40,000 characters), so the tool must shorten them,
say so, and stay under the cap; a query over max_query_chars is refused with the reason."""

from __future__ import annotations

import pytest

from dirac_docs_mcp.errors import InvalidInputError

PARAGRAPH = (
    "The StalledJobAgent looks at running jobs whose pilots stopped sending heartbeats and "
    "declares them Stalled after StalledTimeHours, then Failed after FailedTimeHours. "
    "Administrators tune both options per setup in the WorkloadManagement section. "
)


@pytest.fixture(scope="module")
def big_index(tmp_path_factory, models_data_dir):
    from dirac_docs_mcp.config import load_settings
    from dirac_docs_mcp.indexer.pipeline import Indexer
    from dirac_docs_mcp.runtime import Runtime

    base = tmp_path_factory.mktemp("caps")
    corpus = base / "corpus"
    corpus.mkdir()
    for n in range(8):
        # each file: several 512-token chunks of stalled-job prose (about 2.5 kB a chunk)
        sections = [f"## Part {k}\n\n" + PARAGRAPH * 12 for k in range(4)]
        (corpus / f"agents{n}.md").write_text(f"# Agents {n}\n\n" + "\n\n".join(sections))
    settings = load_settings(data_dir=models_data_dir, index_path=base / "index")
    with Runtime(settings) as runtime:
        report = Indexer(runtime.store, runtime.encoders, settings).run([corpus], progress=False)
    assert report.chunks_written >= 20, report.summary()
    return settings


def test_twenty_long_hits_are_cut_to_the_result_cap(big_index):
    from dirac_docs_mcp.runtime import Runtime
    from dirac_docs_mcp.tools.search import retrieve, search_docs

    cap = big_index.max_result_chars
    with Runtime(big_index) as runtime:
        raw = retrieve(runtime, "when is a job declared stalled", 20)
        result = search_docs(runtime, "when is a job declared stalled", limit=20)
    assert sum(len(c.text) for c in raw) > cap  # the corpus does reach the cap
    assert len(result.hits) == 20
    assert result.truncated is True
    assert sum(len(h.text) for h in result.hits) <= cap
    assert all(h.text.endswith("…") for h in result.hits if len(h.text) >= cap // 20 - 1)


def test_a_query_over_the_query_cap_is_refused(big_index):
    from dirac_docs_mcp.runtime import Runtime
    from dirac_docs_mcp.tools.search import search_docs

    with Runtime(big_index) as runtime, pytest.raises(InvalidInputError, match="2000|2,000"):
        search_docs(runtime, "stalled " * 400, limit=5)
