"""answer_question on a real, empty index abstains before any generator is needed."""

from __future__ import annotations

from dirac_docs_mcp.indexer.pipeline import Indexer
from dirac_docs_mcp.runtime import Runtime
from dirac_docs_mcp.tools.answer import answer_question


def test_empty_index_abstains_without_a_generator(tmp_path, settings_factory):
    empty = tmp_path / "docs"
    empty.mkdir()
    # a generator that cannot be loaded: the abstention must come before any generation
    settings = settings_factory(generator_model=str(tmp_path / "no-such-model.gguf"))
    with Runtime(settings) as rt:
        report = Indexer(rt.store, rt.encoders, settings).run([empty], progress=False)
        assert report.files_seen == 0 and rt.store.exists() and rt.store.count() == 0
        answer = answer_question(rt, "How do I renew a proxy on the central servers?")
    assert answer.answered is False
    assert answer.reason == "the index has no passage for this question"
    assert answer.answer == "I don't know: the index has no passage for this question"
    assert answer.passages == [] and answer.citations == [] and answer.evidence == []
