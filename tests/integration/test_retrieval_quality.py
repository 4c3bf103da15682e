"""Retrieval quality cannot silently regress: a real index of part of the shared corpus (the
DIRAC Administrator and User Guides, 185 files), the dev questions whose gold source lies
there (named by id, read from ../shared/eval/dev.jsonl), recall@5 and MRR@10 above a floor a
little under what the default pipeline scores today; and the project's scorer agrees with
the official ../shared/eval/score_retrieval.py on the same run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import SHARED

pytestmark = [pytest.mark.integration]

PARTS = ("DIRAC/docs/source/AdministratorGuide", "DIRAC/docs/source/UserGuide")
# measured on this subset with the default pipeline (MiniLM int8 + BM25, rank fusion) when
# the test was written: recall@1 0.644, recall@5 0.864, recall@10 0.915, MRR@10 0.742 over
# 59 questions; the floors leave room for two or three questions (one question = 0.017)
# and fail on a real regression
FLOOR_RECALL_5 = 0.82
FLOOR_MRR_10 = 0.70


@pytest.fixture(scope="module")
def subset_index(tmp_path_factory, models_data_dir):
    corpus = SHARED / "corpus"
    if not corpus.is_dir():
        pytest.skip(f"shared corpus not found at {corpus}")
    from dirac_docs_mcp.config import load_settings
    from dirac_docs_mcp.indexer.pipeline import Indexer
    from dirac_docs_mcp.runtime import Runtime

    base = tmp_path_factory.mktemp("subset")
    root = base / "corpus"
    for part in PARTS:
        shutil.copytree(corpus / part, root / part)
    settings = load_settings(data_dir=models_data_dir, index_path=base / "index")
    with Runtime(settings) as runtime:
        report = Indexer(runtime.store, runtime.encoders, settings).run([root], progress=False)
    assert report.files_failed == 0, report.failures
    return settings


def subset_questions() -> list[dict]:
    rows = [json.loads(line) for line in (SHARED / "eval" / "dev.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("kind") != "unanswerable" and r["source"].startswith(PARTS)]


def test_recall_and_mrr_stay_above_the_floor_and_match_the_official_scorer(subset_index, tmp_path):
    from dirac_docs_mcp.evaluation import load_aliases, run_retrieval, score
    from dirac_docs_mcp.runtime import Runtime
    from dirac_docs_mcp.tools.search import retrieve

    questions = subset_questions()
    assert len(questions) >= 50, [q["id"] for q in questions]
    run_file = tmp_path / "run.jsonl"
    with Runtime(subset_index) as runtime:

        def search(question: str) -> list[dict]:
            chunks = retrieve(runtime, question, 10)
            return [{"source": c.source, "text": c.text} for c in chunks]

        run = run_retrieval(questions, search, run_file)
    ours = score(questions, run, load_aliases(None))
    print(f"retrieval on the guides subset: {ours.line()}")  # in CI's log with -rA or -s
    assert ours.recall[5] >= FLOOR_RECALL_5, ours.line()
    assert ours.mrr10 >= FLOOR_MRR_10, ours.line()

    subset_eval = tmp_path / "subset.jsonl"
    subset_eval.write_text("".join(json.dumps(q) + "\n" for q in questions))
    official_json = tmp_path / "official.json"
    subprocess.run(
        [
            sys.executable,
            str(SHARED / "eval" / "score_retrieval.py"),
            str(run_file),
            "--eval",
            str(subset_eval),
            "--json",
            str(official_json),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    official = json.loads(Path(official_json).read_text())
    overall = official["slices"]["overall"]
    for k in (1, 5, 10):
        assert abs(overall[f"recall@{k}"] - ours.recall[k]) < 1e-9, k
    assert abs(overall["MRR@10"] - ours.mrr10) < 1e-9
    # and question by question
    assert official["first_relevant_rank"] == ours.ranks
