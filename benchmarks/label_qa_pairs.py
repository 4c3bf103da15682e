"""Generate Q-A pairs WITHOUT dropping any gate's rejects, for labelling and calibration.

Runs generate_qa_pairs on N chunks sampled with a fixed seed from the whole index, with
``qa_keep_rejected`` on: every valid (schema-passing, not vague, not about the prompt) pair
is written with its gate scores and verdicts (grounding, missing specifics, window and
phrase shares, round-trip rank, kind). Beside the pairs it writes a labelling pool: each
pair with its chunk's text, to read against it.

    python benchmarks/label_qa_pairs.py --n-chunks 50 --seed 14 \
        --output /tmp/qa14/pairs-0.5b.jsonl --pool /tmp/qa14/pool-0.5b.jsonl \
        --json benchmarks/results/qa14_gen_0.5b.json [--model qwen2.5-coder-1.5b]

(data dir and index from DIRAC_MCP_DATA_DIR / DIRAC_MCP_INDEX_PATH.)
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from dirac_docs_mcp.config import load_settings
from dirac_docs_mcp.runtime import Runtime
from dirac_docs_mcp.tools.qa_pairs import QASelection, generate_qa_pairs, select_chunks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-chunks", type=int, default=50)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--model", default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--output", required=True, help="pairs JSONL")
    parser.add_argument("--pool", required=True, help="pairs + chunk text, for labelling")
    parser.add_argument("--json", default=None, help="write the run's report here")
    parser.add_argument(
        "--labels",
        default="benchmarks/data/qa_labels.jsonl",
        help="labels so far: the run reports how many of its chunks they already cover",
    )
    args = parser.parse_args()

    overrides: dict = {"qa_keep_rejected": True}
    if args.model:
        overrides["qa_generator_model"] = args.model
    settings = load_settings(**overrides)
    selection = QASelection(all_chunks=True, n_chunks=args.n_chunks, seed=args.seed)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)

    def progress(done: int, total: int, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    # SIGTERM stops after the batch in flight and still writes the report and the pool
    cancel = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    with Runtime(settings) as runtime:
        report = generate_qa_pairs(
            runtime,
            selection,
            output,
            batch_size=args.batch_size,
            cancel=cancel,
            on_progress=progress,
        )
        chunks = {c.id: c for c in select_chunks(runtime, selection)[0]}
    labelled = set()
    if Path(args.labels).is_file():
        lines = Path(args.labels).read_text().splitlines()
        labelled = {json.loads(line)["chunk_id"] for line in lines if line.strip()}
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    with open(args.pool, "w", encoding="utf-8") as handle:
        for row in rows:
            chunk = chunks.get(row["chunk_id"])
            row["chunk_text"] = chunk.text if chunk else None
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    figures = report.model_dump(exclude={"samples"})
    # a new labelling run should draw chunks not labelled before (another seed)
    figures["chunks_already_labelled"] = len(labelled & set(chunks))
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
