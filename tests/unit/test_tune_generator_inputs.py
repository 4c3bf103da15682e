"""``tune generator`` and ``generator_adapter`` on bad input, without loading a model: missing
or malformed training data, a missing base, an adapter of another base (refused before any
weights load), the setting's roll-back, the validation split and the data order that makes
``--resume`` reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dirac_docs_mcp.cli import main
from dirac_docs_mcp.config import load_settings
from dirac_docs_mcp.errors import InvalidInputError, ModelError
from dirac_docs_mcp.models.files import write_marker
from dirac_docs_mcp.models.tuned import (
    Manifest,
    check_adapter_base,
    model_sha256,
    write_manifest,
)
from dirac_docs_mcp.tuning.lora_loop import DataOrder, LoopSettings
from dirac_docs_mcp.tuning.raft_data import locate, read_records, split_by_source

GOOD = {
    "id": "p1",
    "source": "a.rst",
    "messages": [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "Passages:\n\n[1] x\n\nQuestion: q?\n\nAnswer."},
        {"role": "assistant", "content": '{"answer": "a [1]", "citations": [1]}'},
    ],
    "passages": [],
}


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DIRAC_MCP_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_missing_data_is_one_line_not_found(data_dir, tmp_path, capsys):
    code, err = run_cli(["tune", "generator", "--data", str(tmp_path / "nope")], capsys)
    assert code == 5
    assert err.strip().splitlines() == [f"error: training data {tmp_path / 'nope'} does not exist"]
    (tmp_path / "empty").mkdir()
    code, err = run_cli(["tune", "generator", "--data", str(tmp_path / "empty")], capsys)
    assert code == 5 and "holds no train.jsonl" in err and "qa export" in err


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("not json", "is not JSON"),
        (json.dumps({"id": 1}), "'messages' must list"),
        (json.dumps({**GOOD, "messages": GOOD["messages"][:2]}), "the last message must be"),
        (
            json.dumps({**GOOD, "messages": [{"role": "robot", "content": "x"}] * 2}),
            "each message needs a role",
        ),
    ],
)
def test_malformed_record_names_its_line(data_dir, tmp_path, capsys, line, why):
    data = tmp_path / "records.jsonl"
    data.write_text(json.dumps(GOOD) + "\n" + line + "\n")
    code, err = run_cli(["tune", "generator", "--data", str(data)], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert f"{data}:2" in err and why in err


def test_missing_base_is_a_model_error(data_dir, tmp_path, capsys):
    data = tmp_path / "records.jsonl"
    data.write_text(json.dumps(GOOD) + "\n")
    code, err = run_cli(
        ["tune", "generator", "--data", str(data), "--base", str(tmp_path / "no-model")], capsys
    )
    assert code == 3 and "is neither a built-in name" in err
    assert len(err.strip().splitlines()) == 1


def test_bad_hyperparameters_are_refused(data_dir, tmp_path, capsys):
    data = tmp_path / "records.jsonl"
    data.write_text(json.dumps(GOOD) + "\n")
    code, err = run_cli(["tune", "generator", "--data", str(data), "--rank", "0"], capsys)
    assert code == 2 and "--rank" in err
    code, err = run_cli(["tune", "export", "../x"], capsys)
    assert code == 2 and "tuned model name" in err


def test_split_keeps_documents_whole_and_data_order_is_a_function_of_the_seed():
    records = [{**GOOD, "id": f"r{i}", "source": f"doc{i % 5}"} for i in range(50)]
    train, validation = split_by_source(records, 0.2, seed=3)
    assert train and validation and len(train) + len(validation) == 50
    assert not {r["source"] for r in train} & {r["source"] for r in validation}
    with pytest.raises(InvalidInputError):
        split_by_source(records, 1.0, 0)
    # the micro-batch of step m is the same in a fresh object (what --resume relies on)
    first, again = DataOrder(50, 4, seed=7), DataOrder(50, 4, seed=7)
    assert [first.batch(m) for m in range(40)] == [again.batch(m) for m in range(39, -1, -1)][::-1]
    epoch = sorted(i for m in range(13) for i in first.batch(m))
    assert epoch == list(range(50))  # one epoch: every record once
    assert first.batch(13) != DataOrder(50, 4, seed=8).batch(13)
    loop = LoopSettings(lr=1.0, steps=10, batch_size=1, grad_accum=1, warmup_steps=2,
                        save_every=5, seed=0)  # fmt: skip
    assert [round(loop.lr_at(s), 3) for s in (0, 1, 2, 9)] == [0.5, 1.0, 1.0, 0.125]


def test_locate_reads_the_export_folder(tmp_path):
    folder = tmp_path / "raft"
    folder.mkdir()
    (folder / "train.jsonl").write_text(json.dumps(GOOD) + "\n")
    (folder / "manifest.json").write_text(json.dumps({"raft": {"max_chars_per_passage": 900}}))
    files = locate(folder)
    assert files.validation is None and files.export_chars == 900
    assert [d.rows for d in files.data_files()] == [1, None]
    assert read_records(files.train)[0]["id"] == "p1"


def fake_model_folder(path: Path, sha: str | None) -> Path:
    """Enough of a Hugging Face folder for the resolver (no weights are read)."""
    path.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json"):
        (path / name).write_text("{}")
    (path / "model.safetensors").write_bytes(b"weights")
    if sha:
        write_marker(path, {"sha256": sha, "source": "test", "model_id": "test/base"})
    return path


def test_an_adapter_of_another_base_is_refused_before_loading(tmp_path):
    pytest.importorskip("torch")
    from dirac_docs_mcp.generator.transformers_backend import build_generator

    base = fake_model_folder(tmp_path / "base", "a" * 64)
    adapter = tmp_path / "data" / "models" / "tuned" / "adapter" / "mine"
    adapter.mkdir(parents=True)
    (adapter / "adapter_model.safetensors").write_bytes(b"lora")
    manifest = Manifest("adapter", "mine", "other-model", "other/base", "b" * 64)
    write_manifest(adapter, manifest)
    with pytest.raises(ModelError) as caught:
        check_adapter_base(adapter, base, "test/base")
    message = str(caught.value)
    assert "bbbbbbbbbbbb" in message and "aaaaaaaaaaaa" in message
    assert "other/base" in message and "test/base" in message
    settings = load_settings(
        data_dir=tmp_path / "data", generator_model=str(base), generator_adapter="tuned:mine"
    )
    with pytest.raises(ModelError, match="refusing to load it"):
        build_generator(settings)
    # the same base sha: accepted (the weights would load next)
    write_manifest(adapter, Manifest("adapter", "mine", str(base), "test/base", "a" * 64))
    assert check_adapter_base(adapter, base, "test/base").name == "mine"
    with pytest.raises(ModelError, match="no tuned adapter named 'other'"):
        build_generator(settings.model_copy(update={"generator_adapter": "tuned:other"}))
    with pytest.raises(ModelError, match="names no tuned adapter"):
        build_generator(settings.model_copy(update={"generator_adapter": str(tmp_path)}))


def test_model_sha_is_the_marker_else_the_weights(tmp_path):
    marked = fake_model_folder(tmp_path / "marked", "c" * 64)
    plain = fake_model_folder(tmp_path / "plain", None)
    assert model_sha256(marked) == "c" * 64
    import hashlib

    assert model_sha256(plain) == hashlib.sha256(b"weights").hexdigest()


def test_removing_the_setting_rolls_back(monkeypatch, tmp_path):
    monkeypatch.setenv("DIRAC_MCP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DIRAC_MCP_GENERATOR_ADAPTER", "tuned:x")
    assert load_settings().generator_adapter == "tuned:x"
    monkeypatch.setenv("DIRAC_MCP_GENERATOR_ADAPTER", "")
    assert load_settings().generator_adapter is None
    pytest.importorskip("torch")
    from dirac_docs_mcp.generator.transformers_backend import generator_key

    with_adapter = generator_key(load_settings(generator_adapter="tuned:x"))
    assert with_adapter != generator_key(load_settings()) and "tuned:x" in with_adapter


def test_fit_caution_warns_only_when_most_records_do_not_fit() -> None:
    from dirac_docs_mcp.tuning.generator import fit_caution

    dropped = {"prompt too long even at the shortest passages": 106}
    # the full-corpus export at 512 tokens: 2 of 108 left, the run would train on almost nothing
    (caution,) = fit_caution(2, 108, dropped, 512)
    assert "only 2 of 108 records fit --max-seq-tokens 512" in caution
    assert "raise it" in caution and "prompt too long" in caution
    assert fit_caution(54, 108, {}, 1024) == []  # half kept: the usual shortening, no warning
    assert fit_caution(0, 0, {}, 1024) == []
