"""The dirac-docs:// link a search hit carries can be read back, whatever the file name."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from dirac_docs_mcp.errors import InvalidInputError, NotFoundError
from dirac_docs_mcp.indexer.pipeline import Indexer
from dirac_docs_mcp.runtime import Runtime
from dirac_docs_mcp.tools.documents import read_document
from dirac_docs_mcp.tools.search import URI_SCHEME, doc_link, search_docs

NAMES = {
    "notes/100%25 done.md": "quokka percent",
    "notes/a b#c?.md": "quokka space hash",
    "notes/caf\u00e9 %2e%2e.md": "quokka accent",
}


def test_links_of_odd_file_names_resolve(tmp_path, settings_factory):
    corpus = tmp_path / "docs"
    (corpus / "notes").mkdir(parents=True)
    for name, words in NAMES.items():
        (corpus / name).write_text(f"# {words}\n\nThe {words} note says {words}.\n")
    (corpus / "notes/100%.md").write_text("# decoy\n\nNot the percent note.\n")
    settings = settings_factory()
    with Runtime(settings) as rt:
        report = Indexer(rt.store, rt.encoders, settings).run([corpus], progress=False)
        assert report.files_indexed == len(NAMES) + 1, report.failures
        for name, words in NAMES.items():
            hit = next(h for h in search_docs(rt, words, limit=10).hits if h.source == name)
            assert hit.link == doc_link(name)
            # the link as a client gives it to read_document, and the path the MCP resource
            # template hands over (the link's path decoded once)
            for ref in (hit.link, unquote(hit.link[len(URI_SCHEME) :]), name):
                text, _mime = read_document(rt, ref)
                assert f"The {words} note" in text, ref
        with pytest.raises(NotFoundError):
            read_document(rt, "dirac-docs://notes/100%2525%2520done.md")  # decoded once only
        with pytest.raises(InvalidInputError):
            read_document(rt, "dirac-docs://%252e%252e/etc/passwd")
