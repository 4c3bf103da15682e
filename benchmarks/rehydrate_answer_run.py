"""Put the passage texts back into a committed answer run, so its checks can be replayed.

The answer runs in ``benchmarks/results/`` are committed without corpus text (each row keeps
its passages' source and section, and the model's raw attempts). Retrieval is deterministic,
so asking the index again for each question gives the same passages; this script does that,
checks that every passage matches the stored source and section, and writes a full run file
that ``calibrate_answers.py`` can replay without generating.
Rows whose passages no longer match (the index or the default ranking changed since the run)
are reported and left out, never silently re-paired.

    DIRAC_MCP_DATA_DIR=/work/data python benchmarks/rehydrate_answer_run.py \
        benchmarks/results/answers_dev_checks_example.json -o full_run.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dirac_docs_mcp.config import Settings
from dirac_docs_mcp.evaluation import load_questions
from dirac_docs_mcp.runtime import Runtime
from dirac_docs_mcp.tools.search import retrieve, to_hits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--questions", default="../shared/eval/dev.jsonl")
    args = parser.parse_args()
    data = json.loads(Path(args.run).read_text())
    questions = {q["id"]: q for q in load_questions(Path(args.questions))}
    settings = Settings()
    kept, mismatched = [], []
    with Runtime(settings) as runtime:
        for row in data["rows"]:
            stored = row["passages"]
            if not stored:
                kept.append(row)
                continue
            chunks = retrieve(runtime, questions[row["id"]]["question"], len(stored))
            hits, _ = to_hits(chunks, settings.max_result_chars)
            same = len(hits) == len(stored) and all(
                h.source == s["source"] and h.section == s["section"]
                for h, s in zip(hits, stored, strict=False)
            )
            if not same:
                mismatched.append(row["id"])
                continue
            row["passages"] = [{**s, "text": h.text} for s, h in zip(stored, hits, strict=True)]
            kept.append(row)
    data["rows"] = kept
    data["rehydrated"] = {"from": args.run, "mismatched": mismatched}
    Path(args.output).write_text(json.dumps(data, indent=1))
    print(
        f"{len(kept)} rows with passage text, {len(mismatched)} left out "
        f"(passages differ from the stored run): {' '.join(mismatched)}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
