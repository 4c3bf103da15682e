"""Result and data shapes shared by every room (indexer, store, tools, server, CLI)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

BlockKind = Literal["text", "code", "table"]


class Block(BaseModel):
    """One paragraph-level unit of a section: prose, a literal/code block or a table.

    Code blocks and tables are kept whole by the chunker where they fit its bound.
    """

    kind: BlockKind = "text"
    text: str


class Section(BaseModel):
    """A run of blocks under one heading path, in document order."""

    breadcrumb: list[str] = Field(default_factory=list)
    blocks: list[Block] = Field(default_factory=list)
    page: int | None = None  # 1-based PDF page, None for other formats


class Document(BaseModel):
    """A parsed source file: its path relative to the indexed root and its sections."""

    source: str  # path relative to the indexed root, forward slashes
    title: str = ""
    format: str = ""  # rst, md, txt, cfg, pdf
    sections: list[Section] = Field(default_factory=list)


class Chunk(BaseModel):
    """A retrievable unit: bounded text with its provenance."""

    id: str  # stable uuid derived from source + position
    source: str
    breadcrumb: list[str] = Field(default_factory=list)
    text: str  # the chunk's own text, as shown to users
    position: int  # index of the chunk within its document
    page: int | None = None

    @property
    def section(self) -> str:
        return " › ".join(self.breadcrumb)

    @property
    def embed_text(self) -> str:
        """What gets embedded and keyword-indexed: where the text lives, then the text.

        The path and heading trail carry most of the signal for short technical
        questions (on the dev questions BM25 over path-prefixed chunks found more than
        MiniLM alone: recall@5 0.80 against 0.61); they are prepended, never stored in
        ``text``.
        """
        head = self.source
        if self.breadcrumb:
            head += "\n" + self.section
        return head + "\n\n" + self.text


class SearchHit(BaseModel):
    """One search result with everything needed to cite it."""

    rank: int = Field(description="1-based rank in this result list")
    text: str = Field(description="the passage text")
    source: str = Field(description="path of the source document relative to its indexed root")
    section: str = Field(
        description="heading breadcrumb, e.g. 'Administrator Guide › Systems › WMS'"
    )
    score: float = Field(
        description="fused relevance score (higher is better; comparable within one query)"
    )
    chunk_id: str
    link: str = Field(description="dirac-docs:// URI of the source document")
    page: int | None = Field(default=None, description="PDF page number, when the source is a PDF")
    doc_set: str = Field(
        default="", description="the doc set (DIRAC, diracx, DIRACOS2, Pilot, WebAppDIRAC...)"
    )
    version: str = Field(
        default="", description="the doc set's version the passage comes from (tag or commit)"
    )


class SearchResult(BaseModel):
    query: str
    hits: list[SearchHit]
    truncated: bool = Field(
        default=False,
        description="true when passage texts were shortened to bound the response size",
    )


class IndexReport(BaseModel):
    """Summary of one indexing run."""

    files_seen: int = 0
    files_indexed: int = 0
    files_unchanged: int = 0
    files_deleted: int = 0
    files_failed: int = 0
    files_skipped: int = 0  # outside the indexed folder, not a regular file, too large, binary
    chunks_written: int = 0
    chunks_deleted: int = 0
    seconds: float = 0.0
    failures: list[str] = Field(default_factory=list)  # "path: reason"
    skipped: list[str] = Field(default_factory=list)  # "path: reason"

    def summary(self) -> str:
        return (
            f"{self.files_seen} files: {self.files_indexed} indexed, {self.files_unchanged} unchanged, "
            f"{self.files_deleted} deleted, {self.files_failed} failed, {self.files_skipped} skipped; "
            f"{self.chunks_written} chunks written, {self.chunks_deleted} removed; {self.seconds:.1f} s"
        )


class IndexStatus(BaseModel):
    location: str
    collection: str
    embedding_model: str | None
    dense2_model: str | None = None
    points: int
    files: int
    roots: list[str]
    doc_sets: dict[str, dict[str, int | str]] = Field(
        default_factory=dict, description="documents (and synced version) of each doc set"
    )


class Citation(BaseModel):
    n: int = Field(description="the [n] marker used in the answer text")
    source: str
    section: str
    chunk_id: str
    link: str
    page: int | None = None


class Evidence(BaseModel):
    """What one cited passage says in support of the answer, verbatim."""

    n: int = Field(description="the passage's [n] marker")
    source: str
    section: str
    link: str
    page: int | None = None
    sentences: list[str] = Field(
        default_factory=list, description="sentences of the passage, verbatim, that support it"
    )


class Answer(BaseModel):
    question: str
    answered: bool = Field(description="false when the documentation does not support an answer")
    answer: str = Field(description="the answer with [n] citation markers, or a short reason")
    reason: str | None = Field(default=None, description="why the assistant abstained")
    citations: list[Citation] = Field(default_factory=list)
    passages: list[SearchHit] = Field(
        default_factory=list, description="the passages the answer was grounded on"
    )
    model: str = ""
    support: float | None = Field(
        default=None, description="retrieval support: best dense similarity of the question"
    )
    p_answerable: float | None = Field(
        default=None, description="the generator's probability that the passages answer it"
    )
    evidence: list[Evidence] = Field(
        default_factory=list,
        description="for each cited passage (or, evidence-only and abstentions, each passage "
        "given), its sentences that support the answer or are closest to the question",
    )
    quote: Evidence | None = Field(
        default=None,
        description="the passage sentence, verbatim, after which the model finds the "
        "question most likely: the docs' own answer, quoted at the end of the answer text",
    )
    signals: dict[str, float] = Field(
        default_factory=dict,
        description="the abstention signals: question_term_coverage, question_word_coverage, "
        "sentences_generated, sentences_supported, retries, context_pmi (how much more "
        "likely the passages made the answer, nats a token), ...",
    )
    timings: dict[str, float] = Field(default_factory=dict)


class QAPair(BaseModel):
    """One line of a generate_qa_pairs JSONL file."""

    id: str
    question: str
    answer: str
    source: str
    section: str
    chunk_id: str
    page: int | None = None
    grounding: float = Field(description="share of the answer's content words found in the chunk")
    model: str
    settings: dict[str, Any] = Field(default_factory=dict)
    created: str = Field(description="UTC timestamp, ISO 8601")
    # issue 14: faithfulness, round trip, kinds (optional, so older files still load)
    kind: str | None = Field(
        default=None, description="howto/config/command/troubleshooting/concept/other"
    )
    asked_kind: str | None = Field(default=None, description="the kind the prompt asked for")
    specifics_missing: list[str] = Field(
        default_factory=list, description="the pair's specific terms absent from its chunk"
    )
    window_share: float | None = Field(
        default=None, description="lowest answer-sentence content-word share in a chunk window"
    )
    phrase_share: float | None = Field(
        default=None, description="share of the answer's content-word bigrams in the chunk"
    )
    anchored_share: float | None = Field(
        default=None,
        description="lowest answer-sentence share of its and the question's content words "
        "together in a chunk window",
    )
    p_supported: float | None = Field(default=None, description="judge P(chunk supports answer)")
    faithful: bool | None = Field(default=None, description="the faithfulness gate's verdict")
    roundtrip_rank: int | None = Field(
        default=None,
        description="rank of the source chunk when searching the question (None: not in top k)",
    )
    roundtrip_k: int | None = Field(default=None, description="how many results were searched")
    kept: bool = Field(
        default=True, description="passed every gate (False only with qa_keep_rejected)"
    )
    review: str | None = Field(
        default=None, description="a reviewer's label, from qa import-review"
    )


class QACounts(BaseModel):
    chunks_selected: int = 0
    chunks_skipped_done: int = Field(default=0, description="already in the output (resume)")
    chunks_content_free: int = Field(default=0, description="too small, link lists, toctrees")
    chunks_processed: int = 0
    generated: int = Field(default=0, description="pairs the model produced")
    valid: int = Field(default=0, description="pairs passing the schema gate")
    grounded: int = Field(default=0, description="valid pairs whose answer the chunk supports")
    faithful: int = Field(default=0, description="grounded pairs passing the faithfulness gate")
    duplicates: int = Field(default=0, description="faithful pairs dropped as near-duplicates")
    roundtrip: int = Field(
        default=0, description="non-duplicate pairs whose question retrieves its chunk in top k"
    )
    vague: int = Field(default=0, description="questions not self-contained ('it', 'this agent')")
    kinds: dict[str, int] = Field(default_factory=dict, description="written pairs by kind")
    about_prompt: int = Field(default=0, description="pairs about the prompt/passage itself")
    retried: int = Field(
        default=0, description="chunks whose output did not close and were generated again"
    )
    failed: int = Field(
        default=0, description="chunks whose output did not parse after the retry (dropped)"
    )
    repaired: int = Field(default=0, description="outputs that needed the repair pass")
    written: int = 0


class QAReport(BaseModel):
    output: str
    model: str
    counts: QACounts
    cancelled: bool = False
    seconds: float = 0.0
    pairs_per_minute: float = 0.0
    rejections: dict[str, int] = Field(
        default_factory=dict, description="why pairs failed the schema gate, by reason"
    )
    samples: list[QAPair] = Field(default_factory=list)


class QAExportReport(BaseModel):
    train: str
    validation: str
    train_pairs: int
    validation_pairs: int
    train_sources: int
    validation_sources: int
