"""Issue 14 on the real fixture index (real MiniLM, real Qdrant Edge), no generator: the
round-trip filter, and each export loaded by its reader (datasets; the RAFT records
re-rendered through the serving prompt), the manifest, the evaluation-question filter, and
``qa import-review`` through the CLI."""

from __future__ import annotations

import json

import pytest

from dirac_docs_mcp.cli import main
from dirac_docs_mcp.runtime import Runtime
from dirac_docs_mcp.schemas import QAPair, SearchHit
from dirac_docs_mcp.tools.answer import build_messages
from dirac_docs_mcp.tools.qa_export import (
    RAFT_ABSTENTION,
    check_raft_record,
    export_chat_split,
    export_raft,
    export_review,
)
from dirac_docs_mcp.tools.qa_pairs import roundtrip_rank


def chunks_by_source(runtime):
    store = runtime.store
    return {source: store.chunks_of(source) for source in sorted(store.manifest())}


def find_chunk(runtime, needle):
    for chunks in chunks_by_source(runtime).values():
        for chunk in chunks:
            if needle in chunk.text:
                return chunk
    raise AssertionError(f"no fixture chunk contains {needle!r}")


def test_roundtrip_rank_finds_the_source_chunk_only_for_a_specific_question(fixture_index):
    settings, _ = fixture_index
    with Runtime(settings) as runtime:
        stalled = find_chunk(runtime, "StalledTimeHours")
        specific = "How many hours does the StalledJobAgent wait before declaring a job stalled?"
        rank = roundtrip_rank(runtime, specific, stalled.id, 5)
        assert rank is not None and 1 <= rank <= 5
        # a question about another passage does not lead back to this one at k=1
        assert roundtrip_rank(runtime, "What is filling mode for pilots?", stalled.id, 1) is None


def make_pairs(runtime) -> list[QAPair]:
    stalled = find_chunk(runtime, "StalledTimeHours")
    filling = find_chunk(runtime, "filling mode")
    common = dict(grounding=1.0, model="test-model", created="2026-01-01T00:00:00+00:00")

    def pair(pid, chunk, question, answer, **kw):
        return QAPair(
            id=pid,
            question=question,
            answer=answer,
            source=chunk.source,
            section=chunk.section,
            chunk_id=chunk.id,
            kind=kw.pop("kind", "config"),
            **common,
            **kw,
        )

    return [
        pair(
            "s1",
            stalled,
            "Which option sets the hours before the StalledJobAgent declares a job stalled?",
            "StalledTimeHours sets it; its default is 2 hours.",
        ),
        pair(
            "s2",
            stalled,
            "How many hours does a stalled job wait before the StalledJobAgent fails it?",
            "FailedTimeHours, 6 hours by default.",
        ),
        pair(
            "f1",
            filling,
            "What is filling mode for DIRAC pilots?",
            "A pilot runs several jobs one after the other while it has time left.",
            kind="concept",
        ),
        pair(
            "f2",
            filling,
            "How do pilots in filling mode pick their jobs?",
            "They ask the Matcher for a job.",
            kept=False,
            faithful=False,
        ),
    ]


def write(path, pairs):
    path.write_text("".join(p.model_dump_json() + "\n" for p in pairs))


def test_exports_load_with_their_readers(fixture_index, tmp_path):
    from datasets import load_dataset, load_from_disk

    settings, _ = fixture_index
    holdout = tmp_path / "dev.jsonl"
    # near-identical to pair f1: must be dropped from the training exports
    holdout.write_text(
        json.dumps({"id": "d1", "question": "What is the filling mode for DIRAC pilots?"}) + "\n"
    )
    with Runtime(settings) as runtime:
        pairs = make_pairs(runtime)
        pairs_path = tmp_path / "pairs.jsonl"
        write(pairs_path, pairs)

        chat = export_chat_split(pairs_path, tmp_path / "chat", runtime, holdout, 0.85, 0.3)
        raft = export_raft(
            pairs_path,
            tmp_path / "raft",
            runtime,
            holdout,
            0.85,
            distractors=2,
            negative_share=0.5,
            validation_fraction=0.0,
            seed=1,
        )
        review = export_review(pairs_path, tmp_path / "review", runtime)

    # chat: the eval near-duplicate and the gate-rejected pair are gone
    manifest = json.loads((tmp_path / "chat" / "manifest.json").read_text())
    assert manifest["eval_filter"]["dropped"] == 1
    assert manifest["counts"]["excluded"] == {"rejected by a gate": 1}
    assert manifest["corpus"]["files"] >= 2 and len(manifest["corpus"]["sha256"]) == 64
    assert manifest["models"]["generators"] == ["test-model"]
    # one document is left: it all goes to train, and no empty validation file is written
    assert not (tmp_path / "chat" / "validation.jsonl").exists()
    data = load_dataset("json", data_files={"train": str(tmp_path / "chat" / "train.jsonl")})
    users = [m[1]["content"] for m in data["train"]["messages"]]
    assert sorted(users) == sorted([pairs[0].question, pairs[1].question])
    assert chat.files == {"train.jsonl": 2}

    # RAFT: every record re-renders through the serving prompt, its target is valid
    records = [
        json.loads(line) for line in (tmp_path / "raft" / "train.jsonl").read_text().splitlines()
    ]
    assert len(records) == 2 == raft.files["train.jsonl"]
    for record in records:
        check_raft_record(record)
        hits = [SearchHit.model_validate(h) for h in record["passages"]]
        question = record["messages"][-2]["content"].split("\n\nQuestion: ")[1].split("\n\n")[0]
        assert record["messages"][:-1] == build_messages(
            question,
            hits,
            settings.answer_max_chars_per_passage,
            settings.answer_model_may_abstain,
            example=settings.answer_example,  # exactly what the tool serves, example included
        )
        assert settings.answer_example and record["messages"][2]["role"] == "assistant"
        ids = [h.chunk_id for h in hits]
        oracle = next(p.chunk_id for p in pairs if p.id == record["pair_id"])
        if record["negative"]:
            assert oracle not in ids and len(hits) == 3
            assert json.loads(record["messages"][-1]["content"])["answer"] == RAFT_ABSTENTION
        else:
            assert ids[record["oracle_rank"] - 1] == oracle and len(hits) == 3
            assert record["quote"], "the oracle's supporting sentences"
    assert (
        load_dataset("json", data_files=str(tmp_path / "raft" / "train.jsonl"))["train"].num_rows
        == 2
    )

    # review: a datasets folder with the Argilla columns, every pair, its passage
    ds = load_from_disk(str(tmp_path / "review"))
    assert ds.num_rows == 4 == review.files["."]
    assert {"question", "answer", "passage", "link", "grounding", "label", "kept"} <= set(
        ds.column_names
    )
    row = ds[0]
    assert "StalledTimeHours" in row["passage"] and row["link"]
    assert (tmp_path / "review" / "argilla_load.py").is_file()
    assert (tmp_path / "review" / "manifest.json").is_file()


def test_cli_import_review_then_export_leaves_out_the_rejected(
    fixture_index, tmp_path, monkeypatch, capsys
):
    settings, _ = fixture_index
    monkeypatch.setenv("DIRAC_MCP_DATA_DIR", str(settings.data_dir))
    with Runtime(settings) as runtime:
        pairs = make_pairs(runtime)
    pairs_path = tmp_path / "pairs.jsonl"
    write(pairs_path, pairs)
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\ns1,faithful\ns2,not_faithful\n")
    reviewed = tmp_path / "reviewed.jsonl"
    rc = main(["qa", "import-review", str(labels), "--pairs", str(pairs_path), "-o", str(reviewed)])
    assert rc == 0
    assert "1 faithful, 1 not faithful, 2 unreviewed" in capsys.readouterr().out
    out = tmp_path / "chat"
    rc = main(
        [
            "qa",
            "export",
            str(reviewed),
            "-o",
            str(out),
            "--index",
            str(settings.index_path),
            "--validation",
            "0",
        ]
    )
    assert rc == 0
    users = [
        json.loads(line)["messages"][1]["content"]
        for line in (out / "train.jsonl").read_text().splitlines()
    ]
    assert pairs[1].question not in users and pairs[0].question in users
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["excluded"]["labelled not faithful in review"] == 1


if __name__ == "__main__":
    pytest.main([__file__])
