"""A model file whose bytes differ from its sha256 pin is refused (a real hash of a copied,
corrupted file; only where the package lives is redirected)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dirac_docs_mcp.errors import ModelError
from dirac_docs_mcp.models import embedding, llm
from dirac_docs_mcp.models.files import package_dir, sha256_file
from dirac_docs_mcp.models.registry import EMBEDDING_BUILTINS


def _corrupt(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.seek(path.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))


def test_minilm_with_a_corrupted_byte_is_refused(tmp_path, monkeypatch):
    source = EMBEDDING_BUILTINS["minilm-int8"]
    module, file_name = source.onnx
    copies = {}
    for name in {module, source.folder[0]}:
        copies[name] = tmp_path / "site" / name
        shutil.copytree(package_dir(name), copies[name])
    assert sha256_file(copies[module] / file_name) == source.onnx_sha256  # the copy is right
    _corrupt(copies[module] / file_name)
    monkeypatch.setattr(embedding, "package_dir", lambda name: copies[name])
    with pytest.raises(ModelError, match=f"expected {source.onnx_sha256}"):
        embedding.resolve_embedding_model("minilm-int8", tmp_path / "models")
    assert not (tmp_path / "models" / "minilm-int8").exists()


@pytest.mark.parametrize("name", ["smollm2-135m", "qwen2.5-coder-0.5b"])
def test_gguf_generator_with_a_corrupted_byte_is_refused(name, tmp_path, monkeypatch):
    try:
        files = llm.builtin_source_files(name)
    except ModelError as exc:
        pytest.skip(f"{name} is not installed: {exc}")
    copies = []
    for index, path in enumerate(files):
        copy = tmp_path / f"{index:02d}" / path.name
        copy.parent.mkdir()
        shutil.copyfile(path, copy)
        copies.append(copy)
    _corrupt(copies[len(copies) // 2])
    monkeypatch.setattr(llm, "builtin_source_files", lambda _name: copies)
    with pytest.raises(ModelError, match=f"expected {llm.BUILTINS[name].sha256}"):
        llm._resolve_builtin(name, tmp_path / "models")
    assert not (tmp_path / "models" / name).exists()


@pytest.mark.parametrize("name", sorted(llm.BUILTINS))
def test_generator_pins_match_the_installed_files(name):
    """The pins against the real files where they are installed (joined in order)."""
    try:
        files = llm.builtin_source_files(name)
    except ModelError as exc:
        pytest.skip(f"{name} is not installed: {exc}")
    import hashlib

    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
    assert digest.hexdigest() == llm.BUILTINS[name].sha256
