"""Answer scoring of ``eval --answers`` (evaluation.answer_row / summarize_answers)."""

from __future__ import annotations

import pytest

from dirac_docs_mcp.evaluation import answer_row, auroc, summarize_answers
from dirac_docs_mcp.schemas import Answer, Citation


def cite(source: str) -> Citation:
    return Citation(n=1, source=source, section="s", chunk_id="c", link="dirac-docs://" + source)


def test_answer_rows_and_summary() -> None:
    questions = [
        {"id": "a", "question": "q", "source": "x.rst", "keyphrases": ["Stalled Job"]},
        {"id": "b", "question": "q", "source": "x.rst", "alt_sources": ["y.rst"]},
        {"id": "c", "question": "q", "kind": "unanswerable"},
    ]
    answers = [
        Answer(
            question="q",
            answered=True,
            answer="A stalled  job is ...",
            citations=[cite("x.rst")],
            timings={"total_s": 2.0, "tokens_per_s": 10.0},
        ),
        Answer(question="q", answered=False, answer="I don't know", timings={"total_s": 1.0}),
        Answer(question="q", answered=False, answer="I don't know", timings={"total_s": 3.0}),
    ]
    rows = [answer_row(q, a, {}, None) for q, a in zip(questions, answers, strict=True)]
    assert [(r["answered"], r["keyphrase"], r["cites_gold"]) for r in rows] == [
        (True, True, True),
        (False, False, False),
        (False, False, False),
    ]
    summary = summarize_answers(rows)
    assert summary["questions"] == 3
    assert summary["answered_with_keyphrase_and_gold_citation"] == pytest.approx(0.5)
    assert summary["answerable_wrongly_abstained"] == pytest.approx(0.5)
    assert summary["unanswerable_abstained"] == pytest.approx(1.0)
    assert summary["p50_seconds"] == pytest.approx(2.0)
    assert summary["mean_tokens_per_s"] == pytest.approx(10.0)


def test_auroc_counts_ties_half_and_needs_both_sides() -> None:
    assert auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auroc([0.1], [0.9]) == 0.0
    assert auroc([0.5], [0.5]) == 0.5
    assert auroc([], [0.5]) is None
