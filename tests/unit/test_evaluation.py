"""Answer scoring of ``eval --answers`` (evaluation.answer_row / answer_summary)."""

from __future__ import annotations

import pytest

from dirac_docs_mcp.evaluation import answer_row, answer_summary
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
    rows = [answer_row(q, a, {}) for q, a in zip(questions, answers, strict=True)]
    assert [(r["answered"], r["keyphrase"], r["cites_gold"]) for r in rows] == [
        (True, True, True),
        (False, False, False),
        (False, False, False),
    ]
    summary = answer_summary(rows)
    assert summary["questions"] == 3
    assert summary["answered_with_keyphrase_and_gold_citation"] == pytest.approx(0.5)
    assert summary["false_abstention_rate"] == pytest.approx(0.5)
    assert summary["abstention_rate_unanswerable"] == pytest.approx(1.0)
    assert summary["mean_seconds"] == pytest.approx(2.0)
    assert summary["mean_tokens_per_s"] == pytest.approx(10.0)
