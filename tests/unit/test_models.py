"""The built-in registry and the MiniLM int8 assembler: the same marker, staging and
publish helpers as the other assemblers, and folders made by earlier versions (marker
``.verified`` holding the ONNX sha256) still recognised, or re-made when unverified."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from dirac_docs_mcp.errors import ModelError
from dirac_docs_mcp.models.embedding import (
    LEGACY_MINILM_MARKER,
    _assemble_onnx,
    resolve_embedding_model,
)
from dirac_docs_mcp.models.files import read_marker
from dirac_docs_mcp.models.registry import (
    BUILTINS,
    DENSE2_BUILTINS,
    EMBEDDING_BUILTINS,
    GENERATOR_BUILTINS,
    TOKENIZER_FILES,
)

ONNX = b"not really onnx " * 64


@pytest.fixture
def fake_source(tmp_path: Path, monkeypatch):
    """minilm-int8's registry entry pointed at a fake package holding a tiny ONNX file."""
    package = tmp_path / "site" / "fake_minilm_pkg"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "model.onnx").write_bytes(ONNX)
    for name in TOKENIZER_FILES:
        (package / "model" / name).write_text("{}")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return replace(
        EMBEDDING_BUILTINS["minilm-int8"],
        folder=("fake_minilm_pkg", "model"),
        onnx=("fake_minilm_pkg", "model.onnx"),
        onnx_sha256=hashlib.sha256(ONNX).hexdigest(),
    )


def test_one_registry_lists_every_builtin() -> None:
    assert set(EMBEDDING_BUILTINS) == {"minilm-int8", "minilm"}
    assert set(DENSE2_BUILTINS) == {"embeddinggemma-300m"}
    assert set(GENERATOR_BUILTINS) == {"smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"}
    assert set(BUILTINS) == set(EMBEDDING_BUILTINS) | set(DENSE2_BUILTINS) | set(GENERATOR_BUILTINS)


def test_assembles_with_the_shared_marker(tmp_path: Path, fake_source) -> None:
    models = tmp_path / "models"
    folder = _assemble_onnx("minilm-int8", fake_source, models)
    assert (folder / "model.onnx").read_bytes() == ONNX
    assert all((folder / name).is_file() for name in TOKENIZER_FILES)
    assert read_marker(folder)["sha256"] == fake_source.onnx_sha256
    assert [p.name for p in models.iterdir()] == ["minilm-int8"]  # no staging left over
    assert _assemble_onnx("minilm-int8", fake_source, models) == folder


def test_an_old_verified_folder_is_still_recognised(tmp_path: Path, fake_source) -> None:
    folder = tmp_path / "models" / "minilm-int8"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"assembled by an earlier version")
    (folder / LEGACY_MINILM_MARKER).write_text(fake_source.onnx_sha256 + "\n")
    assert _assemble_onnx("minilm-int8", fake_source, folder.parent) == folder
    assert (folder / "model.onnx").read_bytes() == b"assembled by an earlier version"


def test_an_old_verified_builtin_folder_resolves_without_its_packages(tmp_path: Path) -> None:
    source = EMBEDDING_BUILTINS["minilm-int8"]
    folder = tmp_path / "minilm-int8"
    folder.mkdir()
    (folder / LEGACY_MINILM_MARKER).write_text(source.onnx_sha256 + "\n")
    spec = resolve_embedding_model("minilm-int8", tmp_path)
    assert spec.path == folder and spec.backend == "onnx" and spec.dim == 384


@pytest.mark.parametrize("old_marker", [None, "0" * 64])
def test_an_unverified_old_folder_is_remade(tmp_path: Path, fake_source, old_marker) -> None:
    folder = tmp_path / "models" / "minilm-int8"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"half written")
    if old_marker is not None:
        (folder / LEGACY_MINILM_MARKER).write_text(old_marker + "\n")
    assert _assemble_onnx("minilm-int8", fake_source, folder.parent) == folder
    assert (folder / "model.onnx").read_bytes() == ONNX
    assert read_marker(folder) is not None
    assert not (folder / LEGACY_MINILM_MARKER).exists()


def test_a_wrong_onnx_file_is_refused(tmp_path: Path, fake_source) -> None:
    with pytest.raises(ModelError, match="sha256"):
        _assemble_onnx("minilm-int8", replace(fake_source, onnx_sha256="0" * 64), tmp_path)
