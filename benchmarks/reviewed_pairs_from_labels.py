"""Write the hand-labelled pairs of ``benchmarks/data/qa_labels.jsonl`` as a ``qa generate``
pairs file whose ``review`` field carries the label, as ``qa import-review`` would set it.

Why: the labels are 197 pairs a person read against their chunk (issue 14). The faithful
ones are reviewed training data for ``qa export --format raft`` → ``tune generator``
(issue 18); the unfaithful ones are written with ``kept=false`` so no export takes them.
Append the output to (or export it beside) a fresh ``qa generate`` file:

    python benchmarks/reviewed_pairs_from_labels.py -o reviewed.jsonl
    cat pairs_a.jsonl pairs_b.jsonl reviewed.jsonl > pairs.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dirac_docs_mcp.schemas import QAPair
from dirac_docs_mcp.tools.qa_export import FAITHFUL, NOT_FAITHFUL

LABELS = Path(__file__).parent / "data" / "qa_labels.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.labels.read_text().splitlines() if line.strip()]
    with args.output.open("w") as out:
        for row in rows:
            faithful = bool(row["label"])
            pair = QAPair(
                id=row["id"],
                question=row["question"],
                answer=row["answer"],
                source=row["source"],
                section="",
                chunk_id=row["chunk_id"],
                grounding=1.0 if faithful else 0.0,
                model=row["model"],
                settings={"from": "benchmarks/data/qa_labels.jsonl", "run": row.get("run")},
                created="2026-12-01T00:00:00+00:00",
                kept=faithful,
                review=FAITHFUL if faithful else NOT_FAITHFUL,
            )
            out.write(pair.model_dump_json() + "\n")
    print(
        f"{len(rows)} labelled pairs, {sum(bool(r['label']) for r in rows)} faithful -> {args.output}"
    )


if __name__ == "__main__":
    main()
