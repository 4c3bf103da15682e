"""Files of assembled models: hashing, the marker, staging and publishing. A leaf: it
imports nothing else from :mod:`dirac_docs_mcp.models`.

Every assembler (MiniLM int8, the part wheels, the GGUF conversions) builds its folder in a
fresh staging folder inside ``models_dir`` (same file system, so the final rename is atomic),
writes :data:`MARKER` last, and publishes with :func:`publish_folder`, which keeps the
folder of a concurrent process that won the race.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import ModelError

#: written last into an assembled model folder: what it is, where it came from, its sha256
MARKER = ".dirac-source.json"


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


def read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def write_marker(folder: Path, marker: dict) -> None:
    (folder / MARKER).write_text(json.dumps(marker, indent=1) + "\n")


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
