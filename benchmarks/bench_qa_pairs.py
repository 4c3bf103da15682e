"""generate_qa_pairs on N chunks of a real index: parse rate, gate counts, pairs/minute, and
the grounding threshold's calibration.

The run keeps every valid pair (grounding gate at 0) so the grounding score of each is in
the file; the share at or above each threshold is then what the gate would pass. Negatives
for calibration: the same answers scored against another selected chunk (an answer that is
not about its chunk), so a threshold's false-accept rate can be read off.

    python benchmarks/bench_qa_pairs.py --data-dir /tmp/e2e --n-chunks 50 \
        --json benchmarks/results/qa_pairs_50.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

from dirac_docs_mcp.config import load_settings
from dirac_docs_mcp.runtime import Runtime
from dirac_docs_mcp.tools.qa_gates import grounding_score
from dirac_docs_mcp.tools.qa_pairs import QASelection, generate_qa_pairs, select_chunks

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def auroc(positives: list[float], negatives: list[float]) -> float:
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives)) if positives and negatives else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--n-chunks", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model", default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--pairs-per-chunk", type=int, default=None)
    parser.add_argument("--output", default=None, help="pairs JSONL (default: a temp file)")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()

    overrides = {"data_dir": Path(args.data_dir), "qa_min_grounding": 0.0}
    if args.model:
        overrides["generator_model"] = args.model
    settings = load_settings(**overrides)
    threshold = load_settings(data_dir=Path(args.data_dir)).qa_min_grounding
    if args.output:
        output = Path(args.output)
    else:
        output = Path(tempfile.mkdtemp(prefix="qa-bench-")) / "pairs.jsonl"
    selection = QASelection(all_chunks=True, n_chunks=args.n_chunks, seed=args.seed)

    def progress(done: int, total: int, message: str) -> None:
        print(message, file=sys.stderr)

    with Runtime(settings) as runtime:
        report = generate_qa_pairs(
            runtime,
            selection,
            output,
            args.pairs_per_chunk,
            batch_size=args.batch_size,
            on_progress=progress,
        )
        chunks = {c.id: c for c in select_chunks(runtime, selection)[0]}

    lines = output.read_text().splitlines()
    rows = [json.loads(line) for line in lines]  # raises if any line does not parse
    counts = report.counts
    scores = [r["grounding"] for r in rows]
    rng = random.Random(args.seed)
    negatives = []
    ids = sorted(chunks)
    for r in rows:
        other = rng.choice([i for i in ids if i != r["chunk_id"]])
        c = chunks[other]
        negatives.append(grounding_score(r["answer"], f"{c.section}\n{c.text}"))
    share = {t: sum(s >= t for s in scores) / len(scores) if scores else 0.0 for t in THRESHOLDS}
    false_accept = {
        t: sum(s >= t for s in negatives) / len(negatives) if negatives else 0.0 for t in THRESHOLDS
    }
    figures = {
        "model": report.model,
        "chunks": counts.chunks_processed,
        "lines": len(lines),
        "lines_parsing": len(rows),
        "outputs_failed_to_parse": counts.failed,
        "generated": counts.generated,
        "valid": counts.valid,
        "about_prompt": counts.about_prompt,
        "schema_rejections": report.rejections,
        "duplicates_dropped": counts.duplicates,
        "seconds": report.seconds,
        "pairs_per_minute_all_valid": report.pairs_per_minute,
        "grounding_threshold": threshold,
        "share_grounded_at": share,
        "grounded_pairs_per_minute": round(
            60 * sum(s >= threshold for s in scores) / report.seconds, 2
        ),
        "mismatched_chunk_false_accept_at": false_accept,
        "grounding_auroc_vs_mismatched": round(auroc(scores, negatives), 3),
        "output": str(output),
    }
    print(json.dumps(figures, indent=1))
    print("\nfive random pairs:")
    for r in rng.sample(rows, min(5, len(rows))):
        print(f"- [{r['chunk_id']}] ({r['source']}) g={r['grounding']}")
        print(f"  Q: {r['question']}\n  A: {r['answer']}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
