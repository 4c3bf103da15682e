"""Chunker: heading-aware, token-bounded chunks with stable ids."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dirac_docs_mcp.indexer.chunker import NAMESPACE, chunk_document, chunk_id
from dirac_docs_mcp.schemas import Block, Chunk, Document, Section

CORPUS = Path(__file__).parents[3] / "shared" / "corpus"


def words(text: str) -> int:
    return len(text.split())


def with_specials(text: str) -> int:
    """Like a BERT tokenizer: every call adds [CLS] and [SEP]."""
    return len(text.split()) + 2


def chars(text: str) -> int:
    """Not additive: count(a + b) can exceed count(a) + count(b) - 1."""
    return (len(text) + 3) // 4 + 1


def doc_of(*sections: Section, source: str = "docs/guide.rst") -> Document:
    return Document(source=source, title="Guide", format="rst", sections=list(sections))


def sec(crumb: list[str], *blocks: Block | str, page: int | None = None) -> Section:
    items = [b if isinstance(b, Block) else Block(text=b) for b in blocks]
    return Section(breadcrumb=crumb, blocks=items, page=page)


def sentences(n: int, tag: str = "s") -> str:
    return " ".join(f"Sentence {tag}{i} has exactly seven words." for i in range(n))


def bound_for(c: Chunk, count, max_tokens: int) -> int:
    """The documented bound: ``max_tokens``, except when the path and heading trail alone
    leave less than a third of it for text; the text then still gets that third."""
    head = count(Chunk(id="", source=c.source, breadcrumb=c.breadcrumb, text="", position=0)
                 .embed_text)  # fmt: skip
    floor = max(1, max_tokens // 3)
    return max(max_tokens, head + floor + 2)


def check_invariants(chunks: list[Chunk], doc: Document, count, max_tokens: int) -> None:
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert [c.id for c in chunks] == [chunk_id(doc.source, c.position) for c in chunks]
    assert len({c.id for c in chunks}) == len(chunks)
    for c in chunks:
        assert c.source == doc.source
        assert c.text.strip(), "empty chunk"
        bound = bound_for(c, count, max_tokens)
        assert count(c.embed_text) <= bound, (count(c.embed_text), bound, c.embed_text)


# ------------------------------------------------------------------------------ ids


def test_chunk_id_is_uuid5_of_source_and_position():
    expected = str(uuid.uuid5(NAMESPACE, "a/b.rst#3"))
    assert chunk_id("a/b.rst", 3) == expected
    assert chunk_id("a/b.rst", 3) != chunk_id("a/b.rst", 4)
    assert chunk_id("a/b.rst", 3) != chunk_id("a/c.rst", 3)
    assert uuid.UUID(expected).version == 5


def test_ids_stable_and_unique_across_runs():
    doc = doc_of(
        sec(["Guide"], sentences(40)),
        sec(["Guide", "Install"], sentences(30, "i")),
    )
    first = chunk_document(doc, words, max_tokens=64)
    second = chunk_document(doc.model_copy(deep=True), words, max_tokens=64)
    assert len(first) > 3
    assert [c.model_dump() for c in first] == [c.model_dump() for c in second]
    check_invariants(first, doc, words, 64)


# --------------------------------------------------------------------------- bounds


@pytest.mark.parametrize("count", [words, with_specials, chars])
@pytest.mark.parametrize("max_tokens", [32, 64, 256])
def test_every_chunk_fits(count, max_tokens):
    giant_line = "x" * 3000
    doc = doc_of(
        sec(["Guide"], "Short intro."),
        sec(["Guide", "Long"], sentences(80)),
        sec(
            ["Guide", "Code"],
            Block(kind="code", text="\n".join(f"line {i} = {i}" for i in range(200))),
        ),
        sec(["Guide", "Giant"], Block(kind="code", text=giant_line), "word " * 500),
        sec(
            ["Guide", "Table"],
            Block(kind="table", text="\n".join(f"a{i} | b{i}" for i in range(150))),
        ),
    )
    chunks = chunk_document(doc, count, max_tokens=max_tokens, overlap_tokens=8, min_tokens=8)
    check_invariants(chunks, doc, count, max_tokens)
    # nothing was lost: every sentence and code line shows up somewhere
    joined = "\n".join(c.text for c in chunks)
    for i in range(80):
        assert f"s{i} has" in joined
    for i in range(200):
        assert f"line {i} = {i}" in joined
    assert joined.count("x") >= len(giant_line)


blocks_strategy = st.lists(
    st.builds(
        Block,
        kind=st.sampled_from(["text", "code", "table"]),
        text=st.lists(
            st.sampled_from(list("ab .\n|") + ["word ", "Long. ", "x" * 40]), max_size=150
        ).map("".join),
    ),
    max_size=6,
)
sections_strategy = st.lists(
    st.builds(
        Section,
        breadcrumb=st.lists(st.sampled_from(["A", "B", "C", "Deep title"]), max_size=4),
        blocks=blocks_strategy,
        page=st.sampled_from([None, 1, 2]),
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(
    sections=sections_strategy,
    max_tokens=st.integers(min_value=24, max_value=120),
    overlap=st.integers(min_value=0, max_value=16),
    min_tokens=st.integers(min_value=0, max_value=40),
)
def test_property_bounds_and_invariants(sections, max_tokens, overlap, min_tokens):
    doc = doc_of(*sections)
    for count in (words, chars):
        chunks = chunk_document(doc, count, max_tokens, overlap, min_tokens)
        check_invariants(chunks, doc, count, max_tokens)
        pages = {s.page for s in sections}
        assert {c.page for c in chunks} <= pages


# --------------------------------------------------------------------- splitting


def test_long_paragraph_is_split_with_overlap():
    text = sentences(60)
    doc = doc_of(sec(["Guide"], text))
    chunks = chunk_document(doc, words, max_tokens=64, overlap_tokens=16)
    assert len(chunks) > 5
    for before, after in zip(chunks, chunks[1:], strict=False):
        # 16 tokens of overlap = the last two 7-word sentences of the previous piece
        last_two = "Sentence " + "Sentence ".join(before.text.rsplit("Sentence ", 2)[1:])
        assert after.text.startswith(last_two), (before.text, after.text)
    # sentences are never cut in the middle
    for c in chunks:
        assert c.text.startswith("Sentence ") and c.text.endswith("words.")


def test_overlap_falls_back_to_words_for_long_sentences():
    long_sentence = " ".join(f"w{i}" for i in range(300)) + "."
    doc = doc_of(sec(["Guide"], long_sentence))
    chunks = chunk_document(doc, words, max_tokens=64, overlap_tokens=10)
    assert len(chunks) > 4
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.text.split()[:10] == before.text.split()[-10:]


def test_code_that_fits_is_kept_whole():
    code = "\n".join(f"    option_{i} = value_{i}" for i in range(20))
    doc = doc_of(
        sec(["Guide"], sentences(5), Block(kind="code", text=code), sentences(5, "t")),
        sec(["Guide", "Next"], sentences(6, "n")),
    )
    chunks = chunk_document(doc, words, max_tokens=128, overlap_tokens=8)
    holders = [c for c in chunks if "option_0 = value_0" in c.text]
    assert len(holders) == 1
    assert code in holders[0].text  # exact, leading indentation and newlines included
    assert sum("option_" in c.text for c in chunks) == 1


def test_oversized_code_splits_on_lines():
    lines = [f"  line{i} a b c" for i in range(100)]
    doc = doc_of(sec(["Guide"], Block(kind="code", text="\n".join(lines))))
    chunks = chunk_document(doc, words, max_tokens=64, overlap_tokens=12)
    assert len(chunks) > 1
    seen = set()
    for c in chunks:
        for line in c.text.split("\n"):
            assert line in lines  # whole lines only, indentation kept
            seen.add(line)
    assert seen == set(lines)
    # consecutive pieces overlap by whole lines
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.text.split("\n")[0] in before.text.split("\n")


def test_huge_line_without_spaces_is_cut():
    doc = doc_of(sec(["Guide"], Block(kind="code", text="A" * 10_000)))
    chunks = chunk_document(doc, chars, max_tokens=100, overlap_tokens=0)
    assert "".join(c.text for c in chunks) == "A" * 10_000
    check_invariants(chunks, doc, chars, 100)


# ---------------------------------------------------------------------- merging


def test_tiny_sibling_sections_merge():
    doc = doc_of(
        sec(["Guide", "Agents", "StalledJobAgent"], "PollingTime = 120"),
        sec(["Guide", "Agents", "JobCleaningAgent"], "MaxJobsAtOnce = 500"),
        sec(["Guide", "Agents", "JobCleaningAgent", "Options"], "RemoveStatusDelay = 7"),
        sec(["Guide", "Agents", "PilotStatusAgent"], "ClearPilotsDelay = 30"),
    )
    chunks = chunk_document(doc, words, max_tokens=128, min_tokens=48)
    assert len(chunks) == 1
    chunk = chunks[0]
    assert chunk.breadcrumb == ["Guide", "Agents", "StalledJobAgent"]
    assert chunk.text == (
        "PollingTime = 120\n\n"
        "## JobCleaningAgent\n\nMaxJobsAtOnce = 500\n\n"
        "## JobCleaningAgent › Options\n\nRemoveStatusDelay = 7\n\n"
        "## PilotStatusAgent\n\nClearPilotsDelay = 30"
    )


def test_big_sections_do_not_merge_and_titles_stay_visible():
    doc = doc_of(
        sec(["Guide", "Install"], sentences(10, "i")),
        sec(["Guide", "Configure"], sentences(10, "c")),
        sec(["Other", "Unrelated"], "tiny"),
    )
    chunks = chunk_document(doc, words, max_tokens=256, min_tokens=20)
    assert [c.breadcrumb for c in chunks] == [
        ["Guide", "Install"],
        ["Guide", "Configure"],
        ["Other", "Unrelated"],
    ]


def test_merge_needs_room():
    doc = doc_of(
        sec(["G", "a"], "tiny start"),
        sec(["G", "b"], sentences(30)),
    )
    chunks = chunk_document(doc, words, max_tokens=128, min_tokens=48)
    assert chunks[0].text == "tiny start"
    assert all("## b" not in c.text for c in chunks)
    check_invariants(chunks, doc, words, 128)


def test_pdf_chunks_keep_their_page_and_never_cross_pages():
    doc = Document(
        source="pdf/guide.pdf",
        title="Guide",
        format="pdf",
        sections=[
            sec(["Guide"], "page one text", page=1),
            sec(["Guide"], "page two text", page=2),
            sec(["Guide"], sentences(40), page=3),
        ],
    )
    chunks = chunk_document(doc, words, max_tokens=64, min_tokens=48)
    assert [c.page for c in chunks[:2]] == [1, 2]
    assert chunks[0].text == "page one text"
    assert chunks[1].text == "page two text"
    assert {c.page for c in chunks[2:]} == {3}


def test_empty_blocks_and_sections_give_no_chunks():
    doc = doc_of(sec(["Guide"], "   ", "\n\n"), sec(["Guide", "Empty"]))
    assert chunk_document(doc, words) == []
    assert chunk_document(doc_of(), words) == []


def test_long_breadcrumb_still_leaves_room_for_text():
    crumb = ["Title"] + [f"level {i} with many words in it" for i in range(20)]
    doc = doc_of(sec(crumb, sentences(20)))
    chunks = chunk_document(doc, words, max_tokens=64, min_tokens=8)
    assert chunks
    assert all(c.breadcrumb == crumb for c in chunks)  # the full breadcrumb is kept
    assert all(words(c.text) >= 10 for c in chunks[:-1])  # at least max_tokens/3 of text


def test_counts_tokens_once_per_block():
    calls = 0

    def counting(text: str) -> int:
        nonlocal calls
        calls += 1
        return len(text.split())

    n_blocks = 2000
    doc = doc_of(
        *[
            sec(["Guide", f"Section {i // 10}"], f"Block {i} says something short.")
            for i in range(n_blocks)
        ]
    )
    chunks = chunk_document(doc, counting, max_tokens=256)
    assert chunks
    # one count per block, per chunk check, per breadcrumb header and merged title
    assert calls <= n_blocks + 2 * len(chunks) + n_blocks // 10 + 10
    assert sum(c.text.count("## Section 1\n") for c in chunks) == 1  # titled once


# ------------------------------------------------------------------------ corpus


@pytest.mark.integration
@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_corpus_chunks_within_bounds():
    from dirac_docs_mcp.indexer.loaders import SUPPORTED_SUFFIXES, load_document

    total = 0
    for path in sorted(CORPUS.rglob("*")):
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            continue
        rel = path.relative_to(CORPUS).as_posix()
        doc = load_document(path, rel)
        chunks = chunk_document(doc, with_specials, max_tokens=256)
        check_invariants(chunks, doc, with_specials, 256)
        if doc.format == "pdf":
            assert all(c.page for c in chunks)
        total += len(chunks)
    assert total > 1000
