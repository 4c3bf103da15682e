"""The pairs JSONL: atomic batches, resume state, torn tails, locking, output paths, export."""

from __future__ import annotations

import json

import pytest

from dirac_docs_mcp.errors import InvalidInputError, NotFoundError
from dirac_docs_mcp.schemas import QAPair
from dirac_docs_mcp.tools.qa_files import (
    PairFile,
    chat_record,
    export_chat,
    read_pairs,
    resolve_tool_output,
    split_by_source,
)


def make_pair(n: int, source: str = "a.rst", chunk: str | None = None) -> QAPair:
    return QAPair(
        id=f"id{n}",
        question=f"What is option number {n} of the agent?",
        answer=f"Option {n} sets the polling time.",
        source=source,
        section="Agent",
        chunk_id=chunk or f"chunk-{n}",
        grounding=1.0,
        model="test",
        created="2026-01-01T00:00:00+00:00",
    )


def test_batches_append_and_resume_knows_what_is_done(tmp_path):
    out = tmp_path / "pairs.jsonl"
    with PairFile(out) as pf:
        pf.append_batch([make_pair(1), make_pair(2)], ["chunk-1", "chunk-2", "chunk-empty"])
    with PairFile(out) as pf:
        assert pf.done == {"chunk-1", "chunk-2", "chunk-empty"}  # empty chunks too
        assert [p.id for p in pf.pairs] == ["id1", "id2"]
        pf.append_batch([make_pair(3)], ["chunk-3"])
    lines = out.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["id1", "id2", "id3"]


def test_pairs_in_the_file_count_as_done_without_the_state(tmp_path):
    """A crash between the append and the state update must not redo (duplicate) a batch."""
    out = tmp_path / "pairs.jsonl"
    out.write_text(make_pair(1).model_dump_json() + "\n")
    with PairFile(out) as pf:
        assert "chunk-1" in pf.done


def test_a_torn_last_line_is_cut_on_open(tmp_path):
    out = tmp_path / "pairs.jsonl"
    good = make_pair(1).model_dump_json() + "\n"
    out.write_text(good + make_pair(2).model_dump_json()[:40])
    with PairFile(out) as pf:
        assert [p.id for p in pf.pairs] == ["id1"]
        pf.append_batch([make_pair(3)], ["chunk-3"])
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["id1", "id3"]


def test_a_foreign_file_is_refused_not_overwritten(tmp_path):
    out = tmp_path / "notes.jsonl"
    out.write_text('{"hello": "world"}\n')
    with pytest.raises(InvalidInputError, match="not a Q-A pair line"):
        PairFile(out).open()
    assert out.read_text() == '{"hello": "world"}\n'


def test_two_runs_cannot_write_the_same_file(tmp_path):
    out = tmp_path / "pairs.jsonl"
    with PairFile(out):
        with pytest.raises(InvalidInputError, match="another run"):
            PairFile(out).open()
    with PairFile(out) as pf:  # released on close
        assert pf.pairs == []


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd.jsonl", "../escape.jsonl", "a/../../escape.jsonl", "~/x.jsonl", "x.txt", ""],
)
def test_tool_outputs_stay_in_the_output_folder(tmp_path, name):
    with pytest.raises(InvalidInputError):
        resolve_tool_output(tmp_path / "qa", name)


def test_tool_output_symlink_out_is_refused(tmp_path):
    root = tmp_path / "qa"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(InvalidInputError, match="outside"):
        resolve_tool_output(root, "link/pairs.jsonl")
    assert resolve_tool_output(root, "wms/pairs.jsonl") == (root / "wms/pairs.jsonl").resolve()


def test_split_never_puts_a_document_on_both_sides():
    pairs = [make_pair(i, source=f"doc{i % 7}.rst") for i in range(70)]
    train, validation = split_by_source(pairs, 0.2, seed=3)
    assert len(train) + len(validation) == 70
    assert {p.source for p in train}.isdisjoint({p.source for p in validation})
    assert 10 <= len(validation) <= 30
    again, _ = split_by_source(pairs, 0.2, seed=3)
    assert [p.id for p in again] == [p.id for p in train]  # seeded


def test_split_keeps_a_training_side_with_two_documents():
    pairs = [make_pair(1, "a.rst"), make_pair(2, "b.rst")]
    train, validation = split_by_source(pairs, 0.9, seed=0)
    assert len(train) == 1 and len(validation) == 1


def test_export_writes_chat_records_that_datasets_loads(tmp_path):
    datasets = pytest.importorskip("datasets")
    src = tmp_path / "pairs.jsonl"
    src.write_text(
        "".join(make_pair(i, f"d{i % 5}.rst").model_dump_json() + "\n" for i in range(20))
    )
    report = export_chat(src, tmp_path / "export", validation_fraction=0.2, seed=1)
    assert report.train_pairs + report.validation_pairs == 20
    loaded = datasets.load_dataset(
        "json",
        data_files={"train": report.train, "validation": report.validation},
        cache_dir=str(tmp_path / "cache"),
    )
    assert loaded["train"].num_rows == report.train_pairs
    first = loaded["train"][0]["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant"]
    assert first[1]["content"].endswith("?")


def test_export_errors_are_specific(tmp_path):
    with pytest.raises(NotFoundError):
        export_chat(tmp_path / "missing.jsonl", tmp_path / "out")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InvalidInputError, match="no pairs"):
        export_chat(empty, tmp_path / "out")


def test_read_pairs_skips_only_a_torn_tail(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(make_pair(1).model_dump_json() + "\n" + '{"id": "torn')
    assert [p.id for p in read_pairs(path)] == ["id1"]
    path.write_text('{"bad": 1}\n' + make_pair(1).model_dump_json() + "\n")
    with pytest.raises(InvalidInputError):
        read_pairs(path)


def test_chat_record_shape():
    record = chat_record(make_pair(1))
    assert record["messages"][2] == {
        "role": "assistant",
        "content": "Option 1 sets the polling time.",
    }
