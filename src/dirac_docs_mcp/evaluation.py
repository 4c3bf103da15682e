"""Retrieval evaluation in the format of ``shared/eval/score_retrieval.py``, and the
answer scoring of ``eval --answers``.

A hit is relevant when its source is the question's gold source (or an alternative, after
aliases) and its text contains one of the question's keyphrases (case-, whitespace- and
markup-insensitive), exactly as the official scorer decides.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InvalidInputError

_MARKUP = re.compile(r"[`*]")
_WS = re.compile(r"\s+")
KS = (1, 5, 10)


def norm_text(text: str) -> str:
    return _WS.sub(" ", _MARKUP.sub("", text or "")).strip().lower()


def norm_path(path: str, aliases: dict[str, str]) -> str:
    p = (path or "").replace("\\", "/")
    if "corpus/" in p:
        p = p.split("corpus/", 1)[1]
    while p.startswith("./"):
        p = p[2:]
    p = p.lstrip("/")
    return aliases.get(p, p)


def load_questions(path: Path) -> list[dict]:
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"cannot read questions from {path}: {exc}") from None
    for row in rows:
        if "id" not in row or "question" not in row:
            raise InvalidInputError(f"{path}: every line needs 'id' and 'question'")
    return rows


def load_aliases(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    data = json.loads(path.read_text())
    return {k.lstrip("./"): v for k, v in data.items()}


def first_relevant_rank(question: dict, hits: list[dict], aliases: dict[str, str]) -> int | None:
    gold = {question.get("source")} | set(question.get("alt_sources", []))
    phrases = [norm_text(k) for k in question.get("keyphrases", [])]
    for rank, hit in enumerate(hits[:10], 1):
        if norm_path(hit.get("source", ""), aliases) not in gold:
            continue
        text = norm_text(hit.get("text", ""))
        if any(k and k in text for k in phrases):
            return rank
    return None


@dataclass
class RetrievalScores:
    n: int = 0
    recall: dict[int, float] = field(default_factory=dict)
    mrr10: float = 0.0
    ranks: dict[str, int | None] = field(default_factory=dict)
    ms_per_query: float = 0.0

    def line(self) -> str:
        recalls = "  ".join(f"recall@{k} {self.recall[k]:.3f}" for k in KS)
        return f"n={self.n}  {recalls}  MRR@10 {self.mrr10:.3f}  ({self.ms_per_query:.1f} ms/query)"


def score(
    questions: Iterable[dict], run: dict[str, list[dict]], aliases: dict[str, str]
) -> RetrievalScores:
    ranks: dict[str, int | None] = {}
    for q in questions:
        if q.get("kind") == "unanswerable":
            continue
        ranks[q["id"]] = first_relevant_rank(q, run.get(q["id"], []), aliases)
    n = len(ranks)
    values = list(ranks.values())
    return RetrievalScores(
        n=n,
        recall={k: (sum(1 for r in values if r and r <= k) / n if n else 0.0) for k in KS},
        mrr10=(sum(1.0 / r for r in values if r) / n if n else 0.0),
        ranks=ranks,
    )


def run_retrieval(
    questions: list[dict], search: Callable[[str], list[dict]], run_file: Path | None
) -> dict[str, list[dict]]:
    """Run ``search`` per question; optionally write the official run file."""
    run: dict[str, list[dict]] = {}
    for q in questions:
        run[q["id"]] = search(q["question"])
    if run_file is not None:
        run_file.parent.mkdir(parents=True, exist_ok=True)
        with run_file.open("w") as out:
            for q in questions:
                out.write(json.dumps({"id": q["id"], "hits": run[q["id"]]}) + "\n")
    return run


# --------------------------------------------------------------------------------------
# answer scoring (``eval --answers``)


def answer_row(question: dict, answer: Any, aliases: dict[str, str]) -> dict:
    """One question's answer scored: answered or abstained, keyphrase in the answer, a gold
    source among the citations, speed. ``answer`` is a :class:`~.schemas.Answer`."""
    gold = {question.get("source")} | set(question.get("alt_sources", []))
    text = norm_text(answer.answer)
    return {
        "id": question["id"],
        "unanswerable": question.get("kind") == "unanswerable",
        "answered": answer.answered,
        "keyphrase": any(norm_text(k) in text for k in question.get("keyphrases", [])),
        "cites_gold": any(norm_path(c.source, aliases) in gold for c in answer.citations),
        "seconds": answer.timings.get("total_s", 0.0),
        "tokens_per_s": answer.timings.get("tokens_per_s", 0.0),
        "support": answer.support,
        "p_answerable": answer.p_answerable,
        "answer": answer.answer,
    }


def answer_summary(rows: list[dict]) -> dict:
    """The shares over :func:`answer_row` rows: answered with keyphrase and gold citation,
    false abstentions, abstentions on unanswerable questions, mean speed."""
    answerable = [r for r in rows if not r["unanswerable"]]
    unanswerable = [r for r in rows if r["unanswerable"]]

    def share(items, pred):
        return sum(1 for r in items if pred(r)) / len(items) if items else 0.0

    speeds = [r["tokens_per_s"] for r in rows if r["tokens_per_s"]]
    return {
        "questions": len(rows),
        "answered_with_keyphrase_and_gold_citation": share(
            answerable, lambda r: r["answered"] and r["keyphrase"] and r["cites_gold"]
        ),
        "answered_with_gold_citation": share(
            answerable, lambda r: r["answered"] and r["cites_gold"]
        ),
        "false_abstention_rate": share(answerable, lambda r: not r["answered"]),
        "abstention_rate_unanswerable": share(unanswerable, lambda r: not r["answered"]),
        "mean_seconds": sum(r["seconds"] for r in rows) / len(rows) if rows else 0.0,
        "mean_tokens_per_s": sum(speeds) / len(speeds) if speeds else 0.0,
    }
