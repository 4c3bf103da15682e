"""The answer model's own token probabilities as abstention signals (issue 13), measured on a
stored answer run without generating again.

For every row of a committed run (``eval --answers --json``; its raw attempts are kept), the
same passages are retrieved again (checked against the stored source and section), the prompt
the tool sent is rebuilt, and the tool's own :func:`context_pmi` scores the judged answer text
token by token, exactly as ``answer_question`` does after generating (the prompt read once by
a one-token generation, so the scoring pass reuses its key/value cache, as the live tool reuses
its generation's):

- ``ctx``: with the passages, as it was asked (the model's confidence in its answer);
- ``noctx``: the same prompt with no passages (what the model would say from memory).

Per token, ``ctx - noctx`` is the pointwise mutual information between the answer token and
the passages: a token the passages made likely scores high, a token the model would have
written anyway (a guessed default, a fluent invention) scores near zero or below. The scores
are written per token so any aggregate can be tried offline; ``--analyse`` prints each
aggregate's AUROC (answerable vs unanswerable, near misses alone) and, among the questions the
default checks answer, how well it tells a right answer (gold keyphrase) from a wrong one.

    DIRAC_MCP_DATA_DIR=/work/data python benchmarks/answer_logprob_signals.py \\
        benchmarks/results/answers_dev_checks_example.json -o scores.json
    python benchmarks/answer_logprob_signals.py FULL_RUN.json --analyse scores.json
(FULL_RUN.json from rehydrate_answer_run.py: the replay of the default checks needs passage
text)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from dirac_docs_mcp.tools.answer_confidence import ContextPmi


def score(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    from calibrate_answers import judged_attempt

    from dirac_docs_mcp.config import Settings
    from dirac_docs_mcp.evaluation import load_questions
    from dirac_docs_mcp.runtime import Runtime
    from dirac_docs_mcp.tools.answer import build_messages
    from dirac_docs_mcp.tools.answer_confidence import as_written, context_pmi
    from dirac_docs_mcp.tools.search import retrieve, to_hits

    data = json.loads(Path(args.run).read_text())
    questions = {q["id"]: q for q in load_questions(Path(args.questions))}
    out = Path(args.output)
    scores: dict[str, dict] = json.loads(out.read_text()) if out.exists() else {}
    settings = Settings()
    started = time.perf_counter()
    with Runtime(settings) as runtime:
        generator = runtime.generator()
        for i, row in enumerate(data["rows"][: args.max_rows], 1):
            if row["id"] in scores or not row.get("attempts") or not row["passages"]:
                continue
            question = questions[row["id"]]["question"]
            stored = row["passages"]
            chunks = retrieve(runtime, question, len(stored))
            hits, _ = to_hits(chunks, settings.max_result_chars)
            if [(h.source, h.section) for h in hits] != [
                (s["source"], s["section"]) for s in stored
            ]:
                print(f"{row['id']}: passages differ from the run, skipped", file=sys.stderr)
                continue
            # the attempt the tool judged: the retry only when the first was cut at its bound
            attempt = judged_attempt(row)
            if attempt is None or not attempt["answer"]:
                continue
            retried = attempt is not row["attempts"][0]
            ctx_msgs, noctx_msgs = (
                build_messages(
                    question,
                    passages,
                    attempt["max_chars_per_passage"],
                    settings.answer_model_may_abstain,
                    one_sentence=retried,
                    example=settings.answer_example,
                )
                for passages in (hits, [])
            )
            t0 = time.perf_counter()
            # as the tool does it: the prompt read once by generating (here one token), then
            # the answer scored with that prompt's cache and without the passages
            generator.generate(ctx_msgs, max_new_tokens=1)
            pmi = context_pmi(generator, ctx_msgs, noctx_msgs, attempt["answer"])
            if pmi is None:
                continue
            ctx, noctx = pmi.with_passages, pmi.without
            # token strings for the record: the answer as the model wrote (and scored) it
            ids = generator._encode(as_written(attempt["answer"]))  # noqa: SLF001
            scores[row["id"]] = {
                "tokens": generator.tokenizer.convert_ids_to_tokens(ids),
                "ctx": [round(x, 4) for x in ctx],
                "noctx": [round(x, 4) for x in noctx],
                "seconds": round(time.perf_counter() - t0, 3),
            }
            if i % 10 == 0:
                out.write_text(json.dumps(scores) + "\n")
                print(f"{i} rows, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    out.write_text(json.dumps(scores) + "\n")
    print(f"{len(scores)} answers scored", file=sys.stderr)
    return 0


def aggregates(s: dict) -> dict[str, float]:
    """Per-answer summaries of the token scores (higher = more trustworthy)."""
    ctx, noctx = s["ctx"], s["noctx"]
    pmi = [a - b for a, b in zip(ctx, noctx, strict=True)]
    n = len(ctx)
    low = sorted(ctx)[: max(1, n // 10)]
    return {
        "context_pmi": ContextPmi(tuple(ctx), tuple(noctx)).value,  # the tool's signal
        "mean_logprob": statistics.fmean(ctx),
        "min_logprob": min(ctx),
        "low10_logprob": statistics.fmean(low),
        "low10_pmi": statistics.fmean(sorted(pmi)[: max(1, n // 10)]),
        "share_pmi_pos": sum(1 for x in pmi if x > 0.5) / n,
        "mean_noctx": statistics.fmean(noctx),
        "neg_mean_noctx": -statistics.fmean(noctx),
    }


def analyse(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    from calibrate_answers import replay

    from dirac_docs_mcp.config import Settings
    from dirac_docs_mcp.evaluation import auroc, load_aliases, load_questions, norm_text

    rows = {r["id"]: r for r in json.loads(Path(args.run).read_text())["rows"]}
    scores = json.loads(Path(args.analyse).read_text())
    questions = {q["id"]: q for q in load_questions(Path(args.questions))}
    aliases = load_aliases(Path(args.aliases)) if Path(args.aliases).exists() else {}
    settings = Settings()
    verdicts = {}
    for qid, row in rows.items():
        answered, text, _ = replay(
            row,
            questions[qid],
            aliases,
            window=settings.answer_min_window_share,
            coverage=settings.answer_min_question_coverage,
            typed=settings.answer_check_asked_type,
            anchored=settings.answer_min_anchored_share,
        )
        q = questions[qid]
        kp = answered and any(norm_text(k) in norm_text(text) for k in q.get("keyphrases", []))
        verdicts[qid] = (answered, kp)
    values = {qid: aggregates(s) for qid, s in scores.items() if s["ctx"]}
    names = next(iter(values.values())).keys()
    print(f"{len(values)} scored answers; AUROC (higher score = answerable / right)")
    print("signal            all    near   | default-answered: right vs wrong   ans vs unans")
    report = {}
    for name in names:
        pos = [v[name] for q, v in values.items() if not rows[q]["unanswerable"]]
        neg = [v[name] for q, v in values.items() if rows[q]["unanswerable"]]
        near = [v[name] for q, v in values.items() if rows[q]["near_miss"]]
        kept = [q for q in values if verdicts[q][0]]
        right = [values[q][name] for q in kept if verdicts[q][1]]
        wrong = [values[q][name] for q in kept if not verdicts[q][1]]
        k_pos = [values[q][name] for q in kept if not rows[q]["unanswerable"]]
        k_neg = [values[q][name] for q in kept if rows[q]["unanswerable"]]
        figures = [auroc(pos, neg), auroc(pos, near), auroc(right, wrong), auroc(k_pos, k_neg)]
        report[name] = figures
        shown = " ".join("  –  " if f is None else f"{f:.3f}" for f in figures)
        print(f"{name:16s} {shown}")
    print(
        f"default-answered: {sum(1 for q in values if verdicts[q][0])} "
        f"({sum(1 for q in values if verdicts[q][1])} with a gold keyphrase, "
        f"{sum(1 for q in values if verdicts[q][0] and rows[q]['unanswerable'])} unanswerable)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a stored answer run (eval --answers --json)")
    parser.add_argument("-o", "--output", help="scores JSON to write (resumable)")
    parser.add_argument("--analyse", metavar="SCORES", help="print AUROCs of a scores JSON")
    parser.add_argument("--questions", default="../shared/eval/dev.jsonl")
    parser.add_argument("--aliases", default="../shared/corpus/pdf/pdf_sources.json")
    parser.add_argument("--max-rows", type=int, default=None)
    parser.add_argument("--json", help="with --analyse: write the AUROC table here")
    args = parser.parse_args()
    if args.analyse:
        return analyse(args)
    if not args.output:
        parser.error("give -o SCORES.json to score, or --analyse SCORES.json")
    return score(args)


if __name__ == "__main__":
    raise SystemExit(main())
