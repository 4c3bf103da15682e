"""Choose answer_question's abstention thresholds on stored generations, without generating.

Input: the JSON of ``dirac-docs-mcp eval QUESTIONS --answers --json RUN.json`` run with
``DIRAC_MCP_ANSWER_MIN_QUESTION_COVERAGE=0`` (so every question reaches the model and its
raw generation is stored in the row). Each grid point replays the same pure checks the tool
runs (:func:`check_answer` on the stored text, the question coverage on the stored passages)
and prints the issue's figures, so a thin margin over neighbouring thresholds is visible.

    python benchmarks/calibrate_answers.py RUN.json --questions ../shared/eval/dev.jsonl \
        --aliases ../shared/corpus/pdf/pdf_sources.json [--json OUT.json] \
        [--context-pmi SCORES.json]

The context-PMI gate (``answer_min_context_pmi``) is replayed from each judged attempt's
``context_pmi`` (runs made since the signal exists store it) or, for older runs, from
``--context-pmi``: scores written by ``answer_logprob_signals.py`` for the same run.
The quote an accepted answer ends with (``answer_quote_candidates``) is replayed from each
row's stored ``quote`` (runs made since it exists) or from ``--quotes``, scores written by
``answer_quotes.py``; the grid then has a quote axis (off / on).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from dirac_docs_mcp.evaluation import auroc, load_aliases, load_questions, norm_path, norm_text
from dirac_docs_mcp.tools.answer import SYSTEM_PROMPT, answer_instruction
from dirac_docs_mcp.tools.answer_check import check_answer
from dirac_docs_mcp.tools.answer_confidence import ContextPmi
from dirac_docs_mcp.tools.answer_quote import Quote, already_said, with_announced, with_quote
from dirac_docs_mcp.tools.support import Passage, question_coverage

WINDOW_SHARES = (0.4, 0.5, 0.6, 0.7)
COVERAGES = (0.0, 1.0)
# the question's words in one window of one passage: AUROC 0.65 on dev, too weak to gate
QUESTION_WINDOWS = (0.0,)
ANCHORED = (0.0, 0.4, 0.5, 0.6)
CONTEXT_PMI = (0.0, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5)
# the first attempt's answer bound at the default 256-token budget (runs that predate the
# field in the trace)
FIRST_MAX_ANSWER_CHARS = 3 * (256 - 24)


def replay(
    row: dict,
    question: dict,
    aliases: dict,
    window: float,
    coverage: float,
    typed: bool,
    qwindow: float = 0.0,
    anchored: float = 0.0,
    context_pmi: float = 0.0,
):
    """The tool's verdict on one stored row at these thresholds: (answered, text, cited).
    A context-PMI threshold needs the judged attempt's ``context_pmi`` (a row without one
    is answered as if the gate were off, and counted by :func:`missing_pmi`)."""
    hits = row["passages"]
    if not hits:
        return False, "", []
    full = [Passage(h["text"], f"{h['section']} {h['source']}") for h in hits]
    cover = question_coverage(question["question"], full)
    if cover.term_share < coverage or cover.window_share < qwindow:
        return False, "", []
    if not row["attempts"]:
        return False, "", []
    # the live tool retries only an answer cut at a bound; use the first one otherwise
    attempt = judged_attempt(row)
    assert attempt is not None
    chars = attempt["max_chars_per_passage"]
    passages = [
        Passage(
            h["text"] if len(h["text"]) <= chars else h["text"][:chars] + "…",
            f"{h['section']} {h['source']}",
        )
        for h in hits
    ]
    check = check_answer(
        question["question"],
        attempt["answer"],
        attempt["citations"],
        passages,
        window,
        typed,
        instructions=SYSTEM_PROMPT + "\n" + answer_instruction(len(row["attempts"]) > 1),
        min_anchored_share=anchored,
        cut_at_bound=attempt["finish_reason"] in ("length", "timeout")
        or len(attempt["answer"]) >= attempt.get("max_answer_chars", 10**6) - 8,
    )
    if check.problem is not None:
        return False, "", []
    if below_context_pmi(row, context_pmi):
        return False, "", []
    cited = sorted({n for s in check.kept for n in s.passages})
    return True, check.text, [hits[n - 1]["source"] for n in cited]


def judged_attempt(row: dict) -> dict | None:
    """The attempt the tool's checks judge: the retry only when the first was cut."""
    if not row.get("attempts"):
        return None
    first = row["attempts"][0]
    first_cut = first["finish_reason"] in ("length", "timeout") or len(first["answer"]) >= (
        first.get("max_answer_chars", FIRST_MAX_ANSWER_CHARS) - 8
    )
    return row["attempts"][-1] if first_cut else first


def below_context_pmi(row: dict, threshold: float) -> bool:
    """The context-PMI gate (after the support checks): the judged attempt's stored PMI is
    under ``threshold``. Off at 0; a row without a stored PMI passes."""
    value = (judged_attempt(row) or {}).get("context_pmi")
    return threshold > 0 and value is not None and value < threshold


def add_context_pmi(rows: list[dict], path: str) -> None:
    """Put answer_logprob_signals.py's scores into each row's judged attempt."""
    scores = json.loads(Path(path).read_text())
    for row in rows:
        attempt, s = judged_attempt(row), scores.get(row["id"])
        if attempt is not None and s and s["ctx"] and s["noctx"]:
            attempt["context_pmi"] = ContextPmi(tuple(s["ctx"]), tuple(s["noctx"])).value


def missing_pmi(rows: list[dict]) -> int:
    return sum(
        1
        for r in rows
        if (a := judged_attempt(r)) is not None and a["answer"] and "context_pmi" not in a
    )


_VERDICTS: dict[tuple, tuple[bool, str, list[str]]] = {}


def cached_replay(row: dict, question: dict, aliases: dict, **thresholds):
    """:func:`replay`, the support checks run once per row and thresholds: the context-PMI
    gate comes after them, so its grid reuses their verdict."""
    pmi = thresholds.pop("context_pmi", 0.0)
    key = (row["id"], *sorted(thresholds.items()))
    if key not in _VERDICTS:
        _VERDICTS[key] = replay(row, question, aliases, **thresholds)
    answered, text, cited = _VERDICTS[key]
    if answered and below_context_pmi(row, pmi):
        return False, "", []
    return answered, text, cited


def stored_quote(row: dict) -> Quote | None:
    """The row's best-scored quote, its sentence taken from the passage as the judged
    attempt was given it (committed runs carry no corpus text)."""
    q = row.get("quote")
    if not q:
        return None
    attempt = judged_attempt(row) or {}
    chars = attempt.get("max_chars_per_passage", 1600)
    text = row["passages"][q["n"] - 1]["text"]
    text = text if len(text) <= chars else text[:chars] + "…"
    sentence = with_announced(text, Passage(text).sentences[q["index"]])
    return Quote(q["n"], q["index"], sentence, q["score"])


def add_quotes(rows: list[dict], path: str, per_passage: int) -> None:
    """Put answer_quotes.py's best candidate at ``per_passage`` into each row."""
    sys.path.insert(0, str(Path(__file__).parent))
    from answer_quotes import best_of

    scores = json.loads(Path(path).read_text())
    for row in rows:
        if row["id"] in scores and (best := best_of(scores[row["id"]], per_passage)):
            row["quote"] = best


def quoted(row: dict, answered: bool, text: str, cited: list[str]) -> tuple[str, list[str]]:
    """An accepted answer with the row's quote appended, as the tool appends it."""
    quote = stored_quote(row) if answered else None
    if quote is None or already_said(quote, text):
        return text, cited
    source = row["passages"][quote.n - 1]["source"]
    return with_quote(text, quote), cited + [source]


def figures(
    rows: list[dict], questions: dict, aliases: dict, quote: bool = False, **thresholds
) -> dict:
    scored = []
    for row in rows:
        q = questions[row["id"]]
        answered, text, cited = cached_replay(row, q, aliases, **thresholds)
        if quote:
            text, cited = quoted(row, answered, text, cited)
        gold = {q.get("source")} | set(q.get("alt_sources", []))
        scored.append(
            {
                "unanswerable": row["unanswerable"],
                "near": row["near_miss"],
                "answered": answered,
                "kp": answered
                and any(norm_text(k) in norm_text(text) for k in q.get("keyphrases", [])),
                "cite": answered and any(norm_path(s, aliases) in gold for s in cited),
                "gold_given": row["gold_given"],
            }
        )
    ans = [r for r in scored if not r["unanswerable"]]
    una = [r for r in scored if r["unanswerable"]]
    near = [r for r in una if r["near"]]
    given = [r for r in ans if r["gold_given"]]

    def share(items, key):
        return round(sum(1 for r in items if key(r)) / len(items), 3) if items else 0.0

    return {
        **thresholds,
        "quote": quote,
        "unanswerable_abstained": share(una, lambda r: not r["answered"]),
        "near_misses_abstained": share(near, lambda r: not r["answered"]),
        "answerable_wrongly_abstained": share(ans, lambda r: not r["answered"]),
        "answered_with_gold_keyphrase": share(ans, lambda r: r["kp"]),
        "cites_gold_when_given": share(given, lambda r: r["cite"]),
        "gold_given": len(given),
    }


def signal_auroc(rows: list[dict], questions: dict) -> None:
    """Each question-side signal recomputed from the stored passages, and the stored ones:
    AUROC answerable vs unanswerable, and vs near misses alone."""
    values: dict[str, dict[str, float]] = {}
    for row in rows:
        hits = row["passages"]
        full = [Passage(h["text"], f"{h['section']} {h['source']}") for h in hits]
        cover = question_coverage(questions[row["id"]]["question"], full)
        values[row["id"]] = {
            "question_term_coverage": cover.term_share,
            "question_word_coverage": cover.word_share,
            "question_window_coverage": cover.window_share,
            "support": row["signals"].get("support") or 0.0,
        }
        attempt = judged_attempt(row)
        if attempt is not None and attempt.get("context_pmi") is not None:
            values[row["id"]]["context_pmi"] = attempt["context_pmi"]
    for name in (
        "question_term_coverage",
        "question_word_coverage",
        "question_window_coverage",
        "support",
        "context_pmi",
    ):
        have = [r for r in rows if name in values[r["id"]]]
        if not have:
            continue
        pos = [values[r["id"]][name] for r in have if not r["unanswerable"]]
        neg = [values[r["id"]][name] for r in have if r["unanswerable"]]
        near = [values[r["id"]][name] for r in have if r["near_miss"]]
        both, near_only = auroc(pos, neg), auroc(pos, near)
        print(
            f"AUROC {name}: {both if both is None else round(both, 3)} "
            f"(near misses {near_only if near_only is None else round(near_only, 3)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--questions", default="../shared/eval/dev.jsonl")
    parser.add_argument("--aliases", default="../shared/corpus/pdf/pdf_sources.json")
    parser.add_argument("--json")
    parser.add_argument(
        "--context-pmi", help="answer_logprob_signals.py scores for a run that lacks them"
    )
    parser.add_argument("--quotes", help="answer_quotes.py scores for a run that lacks them")
    parser.add_argument(
        "--quote-candidates", type=int, default=3, help="candidates a passage (with --quotes)"
    )
    args = parser.parse_args()
    rows = json.loads(Path(args.run).read_text())["rows"]
    if args.context_pmi:
        add_context_pmi(rows, args.context_pmi)
    if args.quotes:
        add_quotes(rows, args.quotes, args.quote_candidates)
    quote_grid = (False, True) if any(r.get("quote") for r in rows) else (False,)
    missing = missing_pmi(rows)
    pmi_grid = CONTEXT_PMI if missing < len(rows) else (0.0,)
    if len(pmi_grid) > 1:
        print(f"context PMI missing for {missing} answered rows (gate off for them)")
    questions = {q["id"]: q for q in load_questions(Path(args.questions))}
    aliases = load_aliases(Path(args.aliases)) if Path(args.aliases).exists() else {}
    grid = []
    print(
        "window cover typed qwin anch  pmi quote | unans abst | near abst | false abst | keyphrase "
        "| cites gold (n)"
    )
    signal_auroc(rows, questions)
    for window, coverage, typed, qwindow, anchored, pmi, quote in itertools.product(
        WINDOW_SHARES, COVERAGES, (False, True), QUESTION_WINDOWS, ANCHORED, pmi_grid, quote_grid
    ):
        f = figures(
            rows,
            questions,
            aliases,
            quote=quote,
            window=window,
            coverage=coverage,
            typed=typed,
            qwindow=qwindow,
            anchored=anchored,
            context_pmi=pmi,
        )
        grid.append(f)
        print(
            f"{window:6.2f} {coverage:5.2f} {int(typed):5d} {qwindow:4.2f} {anchored:4.2f} "
            f"{pmi:4.2f} {int(quote):5d} | "
            f"{f['unanswerable_abstained']:10.3f} | "
            f"{f['near_misses_abstained']:9.3f} | {f['answerable_wrongly_abstained']:10.3f} | "
            f"{f['answered_with_gold_keyphrase']:9.3f} | {f['cites_gold_when_given']:.3f} "
            f"({f['gold_given']})"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(grid, indent=1))


if __name__ == "__main__":
    main()
