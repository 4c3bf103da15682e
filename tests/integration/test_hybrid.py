"""Hybrid retrieval finds an exact option name that dense retrieval alone misses."""

from __future__ import annotations

from dirac_docs_mcp.runtime import Runtime
from dirac_docs_mcp.tools.search import search_docs


def _ranked_sources(settings, query, **weights):
    with Runtime(settings.model_copy(update=weights)) as rt:
        return [h.source for h in search_docs(rt, query, limit=3).hits]


def test_exact_command_switch_needs_keywords(fixture_index):
    settings, _ = fixture_index
    query = "--valid"  # a switch named only in commands/dirac-proxy-init.txt
    dense_only = _ranked_sources(settings, query, sparse_weight=0.0)
    keywords_only = _ranked_sources(settings, query, dense_weight=0.0)
    hybrid = _ranked_sources(settings, query)
    # MiniLM alone ranks the .cfg file first (its tokens look alike); BM25 matches the
    # exact token, and the fused ranking keeps that
    assert dense_only[0] != "commands/dirac-proxy-init.txt"
    assert keywords_only[0] == "commands/dirac-proxy-init.txt"
    assert hybrid[0] == "commands/dirac-proxy-init.txt"
