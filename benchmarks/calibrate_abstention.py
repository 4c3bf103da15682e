"""Calibrate answer_question's abstention on a question file with 'unanswerable' rows.

For each question: retrieve the passages answer_question would use, then record the retrieval
support (best dense similarity) and the judge model's P(yes) that the passages answer it.
Prints the separation (AUROC) of each signal and, per threshold, the abstention rate on
unanswerable questions and the false-abstention rate on answerable ones.

    DIRAC_MCP_DATA_DIR=... python benchmarks/calibrate_abstention.py ../shared/eval/dev.jsonl \
        --judge-model qwen2.5-coder-1.5b --out runs/calibration.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def auroc(pos: list[float], neg: list[float]) -> float:
    """P(score of a random answerable > score of a random unanswerable)."""
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def main() -> None:
    from dirac_docs_mcp.config import load_settings
    from dirac_docs_mcp.generator import load_generator
    from dirac_docs_mcp.runtime import Runtime
    from dirac_docs_mcp.tools.answer import build_messages, judge_messages
    from dirac_docs_mcp.tools.search import retrieve, to_hits

    ap = argparse.ArgumentParser()
    ap.add_argument("questions", type=Path)
    ap.add_argument("--judge-model", default=None)
    ap.add_argument("--max-questions", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = [json.loads(x) for x in args.questions.read_text().splitlines() if x.strip()]
    rows = rows[: args.max_questions or None]
    settings = load_settings(generator_model=args.judge_model)
    out = []
    with Runtime(settings) as rt:
        judge = load_generator(settings)
        for q in rows:
            t0 = time.perf_counter()
            hits, _ = to_hits(retrieve(rt, q["question"], settings.answer_passages), 40_000)
            messages = build_messages(q["question"], hits, settings.answer_max_chars_per_passage)
            p = judge.yes_probability(judge_messages(q["question"], messages))
            out.append(
                {
                    "id": q["id"],
                    "unanswerable": q.get("kind") == "unanswerable",
                    "support": rt.best_dense_similarity(q["question"]),
                    "p_yes": p,
                    "seconds": time.perf_counter() - t0,
                }
            )
            print(f"{q['id']} unans={out[-1]['unanswerable']} p={p:.3f}", flush=True)
    ans = [r for r in out if not r["unanswerable"]]
    una = [r for r in out if r["unanswerable"]]
    summary = {
        "judge": judge.model_id,
        "n_answerable": len(ans),
        "n_unanswerable": len(una),
        "auroc_p_yes": auroc([r["p_yes"] for r in ans], [r["p_yes"] for r in una]),
        "auroc_support": auroc([r["support"] for r in ans], [r["support"] for r in una]),
        "thresholds": [
            {
                "t": t,
                "abstain_unanswerable": sum(r["p_yes"] < t for r in una) / max(len(una), 1),
                "false_abstain": sum(r["p_yes"] < t for r in ans) / max(len(ans), 1),
            }
            for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
        ],
        "mean_seconds": sum(r["seconds"] for r in out) / max(len(out), 1),
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "rows": out}, indent=1))


if __name__ == "__main__":
    main()
