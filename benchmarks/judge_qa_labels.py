"""A judge model's P(the chunk supports the answer) for every labelled Q-A pair.

The judge is asked exactly what ``generate_qa_pairs`` asks it when ``qa_judge_model`` is
set (``qa_gates.support_messages``, the yes-probability of the next token), here for every
pair of ``benchmarks/data/qa_labels.jsonl``, so that ``calibrate_qa_gates.py
--judge-scores`` can say whether the judge adds anything to the lexical gate. Resumable:
scores already in the output are kept.

    python benchmarks/judge_qa_labels.py --model qwen2.5-coder-1.5b \\
        --output benchmarks/results/qa14_judge_1.5b.json
(data dir and index from DIRAC_MCP_DATA_DIR / DIRAC_MCP_INDEX_PATH; on the shared 2-core
machine, with DIRAC_MCP_GENERATOR_THREADS=1: ~8 s a pair for the 1.5B, ~2.5 s for the 0.5B)

``--pmi`` scores instead how much the chunk makes the answer likely: the model reads the
answer token by token after the question with the chunk and without it (two forward passes,
no decoding) and the output keeps both log-probabilities per token; ``score`` is the
logistic of the mean difference (pointwise mutual information, in nats), so that 0.5 means
"the chunk changes nothing" and ``calibrate_qa_gates.py --judge-scores`` reads it as it reads
a probability.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from dirac_docs_mcp.config import load_settings
from dirac_docs_mcp.runtime import Runtime
from dirac_docs_mcp.tools.answer_confidence import score_context
from dirac_docs_mcp.tools.qa_gates import support_messages


def pmi_messages(question: str, chunk_text: str | None) -> list[dict]:
    """The plain reading-comprehension prompt the answer is scored after (no chunk: from
    memory)."""
    passage = f"Passage:\n{chunk_text}\n\n" if chunk_text is not None else ""
    return [
        {"role": "system", "content": "You answer questions about the DIRAC grid middleware."},
        {
            "role": "user",
            "content": f"{passage}Question: {question}\n\nAnswer in one to three sentences.",
        },
    ]


def pmi_record(judge, question: str, answer: str, chunk_text: str) -> dict:
    pmi = score_context(
        judge,
        pmi_messages(question, chunk_text),
        pmi_messages(question, None),
        answer,
        timeout_s=600,
    )
    if pmi is None:  # an answer of no tokens: the chunk changes nothing
        return {"score": 0.5, "mean_pmi": 0.0, "ctx": [], "noctx": []}
    return {
        "score": round(1 / (1 + math.exp(-pmi.value)), 4),
        "mean_pmi": round(pmi.value, 4),
        "ctx": [round(x, 4) for x in pmi.with_passages],
        "noctx": [round(x, 4) for x in pmi.without],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="the judge (a generator model name)")
    parser.add_argument("--labels", default="benchmarks/data/qa_labels.jsonl")
    parser.add_argument("--output", required=True, help="JSON: pair id -> P(supported)")
    parser.add_argument(
        "--pmi", action="store_true", help="score the chunk's pointwise mutual information"
    )
    args = parser.parse_args()

    out = Path(args.output)
    scores: dict[str, float] = json.loads(out.read_text()) if out.exists() else {}
    # --pmi: the per-token log-probabilities beside the scores, for other aggregates
    details_path = out.with_suffix(".tokens.json")
    details: dict[str, dict] = (
        json.loads(details_path.read_text()) if args.pmi and details_path.exists() else {}
    )
    lines = Path(args.labels).read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    started = time.perf_counter()
    with Runtime(load_settings()) as runtime:
        judge = runtime.generator(args.model)
        for i, row in enumerate(rows, 1):
            if row["id"] in scores:
                continue
            chunk = {c.id: c for c in runtime.store.chunks_of(row["source"])}[row["chunk_id"]]
            if args.pmi:
                record = pmi_record(judge, row["question"], row["answer"], chunk.text)
                scores[row["id"]] = record["score"]
                details[row["id"]] = record
            else:
                messages = support_messages(row["question"], row["answer"], chunk.text)
                scores[row["id"]] = round(judge.yes_probability(messages, timeout_s=600), 4)
            if i % 10 == 0:
                out.write_text(json.dumps(scores, indent=0) + "\n")
                if args.pmi:
                    details_path.write_text(json.dumps(details) + "\n")
                print(f"{i}/{len(rows)} {time.perf_counter() - started:.0f} s", file=sys.stderr)
    out.write_text(json.dumps(scores, indent=0) + "\n")
    if args.pmi:
        details_path.write_text(json.dumps(details) + "\n")
    print(f"{len(scores)} pairs scored by {args.model}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
