"""The quote an answer ends with (issue 13), measured on a stored answer run without
generating again.

For every row of a full answer run (``eval --answers --json``, or a committed one after
``rehydrate_answer_run.py``), the passages the judged attempt was given are rebuilt and each
candidate sentence is scored by the tool's own :func:`answer_quote.score` (how likely the
answer model finds the question after the sentence), in the order the tool scores them.
Written per question without corpus text: each candidate's passage number, sentence index
and score, so ``calibrate_answers.py --quotes`` can put the best one back into the answers
it replays. ``--analyse`` prints how often the best of the first k candidates of each
passage carries a gold keyphrase (what a quote can add), against the lexically closest
sentences, and the score's AUROC answerable vs unanswerable.

    DIRAC_MCP_DATA_DIR=/work/data python benchmarks/answer_quotes.py FULL_RUN.json \\
        -o benchmarks/results/answers_dev_quotes.json
    python benchmarks/answer_quotes.py FULL_RUN.json --analyse \\
        benchmarks/results/answers_dev_quotes.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dirac_docs_mcp.evaluation import auroc, load_questions, norm_text
from dirac_docs_mcp.schemas import SearchHit
from dirac_docs_mcp.tools.support import Passage

PER_PASSAGE_MAX = 6


def given_passages(row: dict, judged: dict | None) -> tuple[list[SearchHit], list[Passage]]:
    """The row's passages as the judged attempt was given them (clipped as the tool clips)."""
    chars = (judged or {}).get("max_chars_per_passage", 1600)
    hits, passages = [], []
    for p in row["passages"]:
        text = p["text"] if len(p["text"]) <= chars else p["text"][:chars] + "…"
        hits.append(
            SearchHit(
                rank=p["n"],
                source=p["source"],
                section=p["section"],
                chunk_id=p.get("chunk_id", ""),
                link="",
                score=0.0,
                text=text,
            )
        )
        passages.append(Passage(text, f"{p['section']} {p['source']}"))
    return hits, passages


def score_run(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    from calibrate_answers import judged_attempt

    from dirac_docs_mcp.config import Settings
    from dirac_docs_mcp.runtime import Runtime
    from dirac_docs_mcp.tools.answer_quote import candidates, score

    rows = json.loads(Path(args.run).read_text())["rows"]
    questions = {q["id"]: q for q in load_questions(Path(args.questions))}
    out = Path(args.output)
    scores: dict[str, dict] = json.loads(out.read_text()) if out.exists() else {}
    started = time.perf_counter()
    with Runtime(Settings()) as runtime:
        generator = runtime.generator()
        for i, row in enumerate(rows[: args.max_rows], 1):
            if row["id"] in scores or not row["passages"]:
                continue
            if any("text" not in p for p in row["passages"]):
                raise SystemExit("the run has no passage text: rehydrate_answer_run.py first")
            question = questions[row["id"]]["question"]
            hits, passages = given_passages(row, judged_attempt(row))
            t0 = time.perf_counter()
            found = []
            for c in candidates(question, hits, passages, args.per_passage):
                value = score(generator, question, c)
                found.append({"n": c.n, "index": c.index, "score": round(value or -99.0, 4)})
            # rank of each candidate within its passage (select_evidence order is passage
            # order, so the lexical rank is recomputed per k by analyse from the k lists)
            scores[row["id"]] = {
                "candidates": found,
                "by_k": {
                    str(k): [[c.n, c.index] for c in candidates(question, hits, passages, k)]
                    for k in range(1, args.per_passage + 1)
                },
                "seconds": round(time.perf_counter() - t0, 3),
            }
            if i % 10 == 0:
                out.write_text(json.dumps(scores) + "\n")
                print(f"{i} rows, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    out.write_text(json.dumps(scores) + "\n")
    print(f"{len(scores)} questions scored", file=sys.stderr)
    return 0


def best_of(entry: dict, k: int) -> dict | None:
    """The best-scored candidate among the tool's candidates at ``k`` a passage."""
    allowed = {tuple(x) for x in entry["by_k"][str(k)]}
    pool = [c for c in entry["candidates"] if (c["n"], c["index"]) in allowed]
    return max(pool, key=lambda c: c["score"]) if pool else None


def analyse(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    from calibrate_answers import judged_attempt

    rows = {r["id"]: r for r in json.loads(Path(args.run).read_text())["rows"]}
    questions = {q["id"]: q for q in load_questions(Path(args.questions))}
    scores = json.loads(Path(args.analyse).read_text())

    def sentence(row_id: str, n: int, index: int) -> str:
        _, passages = given_passages(rows[row_id], judged_attempt(rows[row_id]))
        return passages[n - 1].sentences[index]

    def has_kp(row_id: str, text: str) -> bool:
        return any(norm_text(k) in norm_text(text) for k in questions[row_id]["keyphrases"])

    answerable = [i for i in scores if not rows[i]["unanswerable"]]
    kmax = max(int(k) for k in next(iter(scores.values()))["by_k"])
    print(f"{len(answerable)} answerable of {len(scores)} scored")
    for k in range(1, kmax + 1):
        best = lexical = oracle = 0
        for i in answerable:
            entry = scores[i]
            pool = [sentence(i, n, x) for n, x in entry["by_k"][str(k)]]
            oracle += any(has_kp(i, s) for s in pool)
            lexical += any(has_kp(i, sentence(i, n, x)) for n, x in entry["by_k"]["1"])
            b = best_of(entry, k)
            best += b is not None and has_kp(i, sentence(i, b["n"], b["index"]))
        print(
            f"k={k}: best-scored quote has a gold keyphrase {best}/{len(answerable)}; "
            f"some candidate has one {oracle}; each passage's closest sentence (4 together) "
            f"{lexical}"
        )
    k = args.per_passage
    pos = [b["score"] for i in answerable if (b := best_of(scores[i], k))]
    neg = [b["score"] for i in scores if rows[i]["unanswerable"] and (b := best_of(scores[i], k))]
    print(f"AUROC of the best quote's score, answerable vs unanswerable (k={k}): {auroc(pos, neg)}")
    seconds = sorted(scores[i]["seconds"] for i in scores)
    print(f"seconds a question (k={kmax} scored): p50 {seconds[len(seconds) // 2]:.2f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="full answer run (passage text in its rows)")
    parser.add_argument("-o", "--output", help="scores to write (resumes a partial file)")
    parser.add_argument("--analyse", metavar="SCORES", help="analyse scores written before")
    parser.add_argument("--questions", default="../shared/eval/dev.jsonl")
    parser.add_argument("--per-passage", type=int, default=3)
    parser.add_argument("--max-rows", type=int, default=None)
    args = parser.parse_args()
    if args.analyse:
        return analyse(args)
    if not args.output:
        parser.error("-o/--output or --analyse is required")
    return score_run(args)


if __name__ == "__main__":
    raise SystemExit(main())
