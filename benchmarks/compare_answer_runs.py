"""Compare ``eval --answers --json`` runs side by side: the figures of the answer issue by
slice, and per question where two runs disagree.

Why: the verdict on a tuned adapter (issue 18) is base vs tuned on the same questions and the
same retrieval. A run may be split over several processes (one per core, each with its own
copy of the index: the embedded index is single-process); give its parts joined by ``+`` and
their rows are merged before scoring, as one run would have scored them:

    python benchmarks/compare_answer_runs.py base=base_a.json+base_b.json \\
        tuned=tuned_a.json+tuned_b.json --json benchmarks/results/compare.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dirac_docs_mcp.evaluation import summarize_answers

# the figures printed, in the README's order; counts are printed as "n/N"
FIGURES = (
    ("unanswerable abstained", "unanswerable_abstained", "unanswerable"),
    ("near misses abstained", "near_misses_abstained", "near_misses"),
    ("answerable wrongly abstained", "answerable_wrongly_abstained", "answerable"),
    ("answered with gold keyphrase", "answered_with_gold_keyphrase", "answerable"),
    ("answered, keyphrase + gold cite", "answered_with_keyphrase_and_gold_citation", "answerable"),
    ("cites gold when given", "cites_gold_when_given", "gold_given"),
    ("keyphrase when answered", "keyphrase_when_answered", None),
)


def load_run(spec: str) -> list[dict]:
    """The rows of a run given as ``part.json[+part.json...]``; a question answered in two
    parts is an error (the parts were meant to split the questions)."""
    rows: dict[str, dict] = {}
    for part in spec.split("+"):
        for row in json.loads(Path(part).read_text())["rows"]:
            if row["id"] in rows:
                raise SystemExit(f"error: question {row['id']} is in two parts of {spec}")
            rows[row["id"]] = row
    return list(rows.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="NAME=run.json[+part2.json...]")
    parser.add_argument("--json", type=Path, help="write the summaries and differences here")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {}
    for spec in args.runs:
        name, _, files = spec.partition("=")
        if not files:
            raise SystemExit(f"error: {spec!r}: give NAME=run.json")
        runs[name] = load_run(files)
    common = set.intersection(*({r["id"] for r in rows} for rows in runs.values()))
    # only the questions every run answered are compared: a stopped run is not a worse one
    runs = {name: [r for r in rows if r["id"] in common] for name, rows in runs.items()}
    summaries = {name: summarize_answers(rows) for name, rows in runs.items()}
    names = list(runs)
    print(f"{len(common)} questions in every run")
    print(f"{'figure':34s}" + "".join(f"{n:>16s}" for n in names))
    for label, key, denominator in FIGURES:
        cells = []
        for name in names:
            s = summaries[name]
            value = s[key]
            if denominator:
                cells.append(f"{round(value * s[denominator])}/{s[denominator]} {value:.2f}")
            else:
                cells.append(f"{value:.2f}")
        print(f"{label:34s}" + "".join(f"{c:>16s}" for c in cells))
    for key in ("retried", "p50_seconds", "p95_seconds", "mean_tokens_per_s"):
        cells = [summaries[n][key] for n in names]
        print(f"{key:34s}" + "".join(f"{c:>16.1f}" for c in cells))
    differences: list[dict] = []
    if len(names) >= 2:
        first = names[0]
        by_id = {name: {r["id"]: r for r in rows} for name, rows in runs.items()}
        for qid in sorted(common):
            verdicts = {n: (by_id[n][qid]["answered"], by_id[n][qid]["keyphrase"]) for n in names}
            if len(set(verdicts.values())) > 1:
                differences.append(
                    {
                        "id": qid,
                        "unanswerable": by_id[first][qid]["unanswerable"],
                        **{
                            n: {
                                "answered": by_id[n][qid]["answered"],
                                "keyphrase": by_id[n][qid]["keyphrase"],
                                "answer": by_id[n][qid]["answer"][:160],
                            }
                            for n in names
                        },
                    }
                )
        print(f"{len(differences)} questions where the runs differ (answered or keyphrase):")
        for d in differences:
            cells = "  ".join(
                f"{n}={'ANS' if d[n]['answered'] else 'ABST'}/kp{int(d[n]['keyphrase'])}"
                for n in names
            )
            print(f"  {d['id']:8s} {'unans' if d['unanswerable'] else 'ans  '}  {cells}")
    if args.json:
        args.json.write_text(
            json.dumps({"summaries": summaries, "differences": differences}, indent=1)
        )


if __name__ == "__main__":
    main()
