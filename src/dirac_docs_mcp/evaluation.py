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
# answers
# --------------------------------------------------------------------------------------

# the signals whose power to tell answerable from unanswerable questions is reported (each
# row keeps them, so thresholds can be re-chosen without generating again)
ANSWER_SIGNALS = (
    "question_term_coverage",
    "question_word_coverage",
    "question_window_coverage",
    "support",
    "supported_share",
    "anchored_share",
    "context_pmi",
    "p_answerable",
)


def answer_row(question: dict, answer, aliases: dict[str, str], trace: dict | None) -> dict:
    """One evaluated answer: the verdicts the summary counts, the signals, and what the
    model was given and wrote (to replay the checks offline)."""
    gold = {question.get("source")} | set(question.get("alt_sources", []))
    text = norm_text(answer.answer) if answer.answered else ""
    signals = dict(answer.signals)
    generated = signals.get("sentences_generated") or 0.0
    if generated:
        signals["supported_share"] = signals.get("sentences_supported", 0.0) / generated
    signals["support"] = answer.support
    if answer.p_answerable is not None:
        signals["p_answerable"] = answer.p_answerable
    return {
        "id": question["id"],
        "unanswerable": question.get("kind") == "unanswerable",
        "near_miss": question.get("kind") == "unanswerable" and bool(question.get("hard")),
        "answered": answer.answered,
        "keyphrase": any(norm_text(k) in text for k in question.get("keyphrases", [])),
        "cites_gold": answer.answered
        and any(norm_path(c.source, aliases) in gold for c in answer.citations),
        "gold_given": any(norm_path(h.source, aliases) in gold for h in answer.passages),
        "seconds": answer.timings.get("total_s", 0.0),
        "timings": dict(answer.timings),
        "tokens_per_s": answer.timings.get("tokens_per_s", 0.0),
        "retried": bool(signals.get("retries")),
        "signals": signals,
        "answer": answer.answer,
        "reason": answer.reason,
        "cited": [c.n for c in answer.citations],
        "evidence": [e.model_dump() for e in answer.evidence],
        "attempts": (trace or {}).get("attempts", []),
        # the best-scored passage sentence, whatever the verdict (replayed by
        # calibrate_answers.py at other thresholds)
        "quote": (trace or {}).get("quote"),
        "passages": [
            {
                "n": h.rank,
                "source": h.source,
                "section": h.section,
                "chunk_id": h.chunk_id,
                "text": h.text,
            }
            for h in answer.passages
        ],
    }


def auroc(positives: list[float], negatives: list[float]) -> float | None:
    """P(a random positive scores above a random negative), ties counted half."""
    if not positives or not negatives:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summarize_answers(rows: list[dict]) -> dict:
    """The figures of the answer issue, by slice: abstention, keyphrase, gold citation
    (over the questions whose gold source was among the passages given), speed, and each
    signal's AUROC (answerable = positive) overall and on near misses alone."""
    answerable = [r for r in rows if not r["unanswerable"]]
    unanswerable = [r for r in rows if r["unanswerable"]]
    near = [r for r in unanswerable if r.get("near_miss")]
    gold_given = [r for r in answerable if r.get("gold_given")]

    def share(items: list[dict], pred) -> float:
        return sum(1 for r in items if pred(r)) / len(items) if items else 0.0

    answered = [r for r in answerable if r["answered"]]
    seconds = [r["seconds"] for r in rows]
    speeds = [r["tokens_per_s"] for r in rows if r["tokens_per_s"]]
    summary: dict = {
        "questions": len(rows),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "near_misses": len(near),
        "unanswerable_abstained": share(unanswerable, lambda r: not r["answered"]),
        "near_misses_abstained": share(near, lambda r: not r["answered"]),
        "answerable_wrongly_abstained": share(answerable, lambda r: not r["answered"]),
        "answered_with_gold_keyphrase": share(
            answerable, lambda r: r["answered"] and r["keyphrase"]
        ),
        "answered_with_keyphrase_and_gold_citation": share(
            answerable, lambda r: r["answered"] and r["keyphrase"] and r["cites_gold"]
        ),
        "gold_given": len(gold_given),
        "cites_gold_when_given": share(gold_given, lambda r: r["cites_gold"]),
        "cites_gold_when_given_and_answered": share(
            [r for r in gold_given if r["answered"]], lambda r: r["cites_gold"]
        ),
        "keyphrase_when_answered": share(answered, lambda r: r["keyphrase"]),
        "retried": sum(1 for r in rows if r.get("retried")),
        "p50_seconds": _percentile(seconds, 0.5),
        "p95_seconds": _percentile(seconds, 0.95),
        "mean_tokens_per_s": sum(speeds) / len(speeds) if speeds else 0.0,
    }
    for name in ANSWER_SIGNALS:
        pos = [r["signals"][name] for r in answerable if r["signals"].get(name) is not None]
        neg = [r["signals"][name] for r in unanswerable if r["signals"].get(name) is not None]
        near_neg = [r["signals"][name] for r in near if r["signals"].get(name) is not None]
        summary[f"auroc_{name}"] = auroc(pos, neg)
        summary[f"auroc_{name}_near_misses"] = auroc(pos, near_neg)
    return summary
