"""Retrieval quality with and without the second dense model, over a grid of fusion settings
(score fusion ``minmax`` per weight triple, rank fusion ``rrf`` per weight triple and k).

Runs the product's own retrieval (``tools.search.retrieve``) on an index built with a second
dense model, once per (weights, k), and scores it with the official rules (file-level hit
whose text holds a key phrase). Also scores the index's two-list fusion (second model
weight 0), i.e. what the same chunks give without it. Every config is the same code path a
search takes; nothing is re-embedded per config except the query.

    dirac-docs-mcp models install embeddinggemma-300m
    DIRAC_MCP_DATA_DIR=/tmp/g DIRAC_MCP_DENSE2_MODEL=embeddinggemma-300m \\
        dirac-docs-mcp index ../shared/corpus
    DIRAC_MCP_DATA_DIR=/tmp/g DIRAC_MCP_DENSE2_MODEL=embeddinggemma-300m \\
        python benchmarks/bench_dense2.py ../shared/eval/dev.jsonl \\
        --aliases ../shared/corpus/pdf/pdf_sources.json --out benchmarks/results/x.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from dirac_docs_mcp.config import load_settings
from dirac_docs_mcp.evaluation import load_aliases, load_questions, run_retrieval, score
from dirac_docs_mcp.runtime import Runtime
from dirac_docs_mcp.tools.search import retrieve

GRID_WEIGHTS = [
    (1.0, 1.0, 0.0),  # the two-list default (MiniLM + BM25) on the same chunks
    (0.0, 0.0, 1.0),  # the second model alone
    (0.0, 1.0, 1.0),
    (1.0, 1.0, 1.0),
    (0.5, 1.0, 1.0),
    (0.5, 1.0, 1.5),
    (1.0, 1.0, 1.5),
    (0.25, 1.0, 1.0),
]
GRID_K = [1, 5, 10, 20, 60]


def evaluate(runtime: Runtime, questions: list[dict], aliases: dict, k: int = 10) -> dict:
    def search(question: str) -> list[dict]:
        return [{"source": c.source, "text": c.text} for c in retrieve(runtime, question, k)]

    start = time.perf_counter()
    run = run_retrieval(questions, search, None)
    elapsed = time.perf_counter() - start
    out = {}
    for label, subset in (
        ("all", questions),
        ("first46", [q for q in questions if q["id"].startswith("d")]),
    ):
        s = score(subset, {q["id"]: run[q["id"]] for q in subset}, aliases)
        out[label] = {
            "n": s.n,
            "recall@1": round(s.recall[1], 3),
            "recall@5": round(s.recall[5], 3),
            "recall@10": round(s.recall[10], 3),
            "MRR@10": round(s.mrr10, 3),
        }
    out["ms_per_query"] = round(elapsed / len(questions) * 1000, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("questions", type=Path)
    ap.add_argument("--aliases", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    questions = load_questions(args.questions)
    aliases = load_aliases(args.aliases)
    base = load_settings()
    if not base.dense2_model:
        raise SystemExit("set DIRAC_MCP_DENSE2_MODEL to the model the index was built with")
    results = {"dense2_model": base.dense2_model, "defaults": None, "grid": []}
    with Runtime(base) as runtime:
        retrieve(runtime, "warm up", 5)
        results["defaults"] = {
            "fusion": base.fusion,
            "weights": [base.dense_weight, base.sparse_weight, base.dense2_weight],
            "rrf_k": base.rrf_k,
            **evaluate(runtime, questions, aliases),
        }
        print("defaults", json.dumps(results["defaults"]))
        configs = [("minmax", w, None) for w in GRID_WEIGHTS]
        configs += [("rrf", w, k) for w in GRID_WEIGHTS for k in GRID_K]
        for fusion, weights, k in configs:
            runtime.settings = base.model_copy(
                update={
                    "fusion": fusion,
                    "dense_weight": weights[0],
                    "sparse_weight": weights[1],
                    "dense2_weight": weights[2],
                    "rrf_k": k or base.rrf_k,
                }
            )
            row = {"fusion": fusion, "weights": list(weights), "rrf_k": k}
            row.update(evaluate(runtime, questions, aliases))
            results["grid"].append(row)
            a, f = row["all"], row["first46"]
            print(
                f"{fusion:6} w={weights} k={k or '-'!s:<3} all R@5 {a['recall@5']:.3f} "
                f"MRR {a['MRR@10']:.3f} | first 46 R@5 {f['recall@5']:.3f} MRR {f['MRR@10']:.3f}"
            )
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
