"""Tuned artifacts: the one place where what ``dirac-docs-mcp tune`` makes is kept, each in
its own folder with a ``manifest.json`` saying what it was made from.

Layout under ``models_dir`` (``<data_dir>/models``)::

    tuned/retriever/<name>/   a sentence-transformers folder (+ model.onnx for an int8 copy)
    tuned/adapter/<name>/     a peft LoRA adapter of a generator
    tuned/merged/<name>/      a generator with its adapter merged in (``tune export``)

A setting names a tuned artifact as ``tuned:<name>`` or by its folder path. A folder is
published only once it is complete (built in a staging folder, manifest written last, then
renamed), so a killed run never leaves a half-written artifact that a setting could load.

Leaf data and files only: nothing here loads a model.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import InvalidInputError, ModelError
from .files import publish_folder, read_marker, sha256_file, staging_dir

Kind = Literal["retriever", "adapter", "merged"]
KINDS: tuple[Kind, ...] = ("retriever", "adapter", "merged")
MANIFEST = "manifest.json"
PREFIX = "tuned:"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")


@dataclass
class DataFile:
    """One training input, identified by content."""

    path: str
    sha256: str
    rows: int | None = None


@dataclass
class Manifest:
    """What a tuned artifact is and how it was made; written as ``manifest.json``."""

    kind: Kind
    name: str
    base_model: str  # the setting value that named the base (built-in name or folder)
    base_model_id: str  # the id an index or a generator cache knows the base by
    base_sha256: str  # of the base's main weights file: a different base is refused
    data: list[DataFile] = field(default_factory=list)
    hyperparameters: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)  # validation / dev figures, base vs tuned
    cost: dict = field(default_factory=dict)  # wall seconds, peak memory, device
    created: str = ""
    package_version: str = ""
    warnings: list[str] = field(default_factory=list)  # e.g. tuned not better than the base
    # what a setting naming the artifact needs (a tuned retriever: the id an index built
    # with it records, its dimension, how many tokens it reads, its int8 ONNX file)
    model_id: str = ""
    serving: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = dict(self.__dict__)
        out["data"] = [d.__dict__ for d in self.data]
        return out

    @classmethod
    def from_json(cls, raw: dict) -> Manifest:
        data = [DataFile(**d) for d in raw.get("data", [])]
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__ and k != "data"}
        return cls(data=data, **known)


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise InvalidInputError(
            f"tuned model name {name!r} must be 1-64 letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit"
        )
    return name


def tuned_root(models_dir: Path, kind: Kind) -> Path:
    return Path(models_dir) / "tuned" / kind


def tuned_dir(models_dir: Path, kind: Kind, name: str) -> Path:
    return tuned_root(models_dir, kind) / check_name(name)


def data_file(path: Path) -> DataFile:
    """A training input by content hash (and its line count for a JSONL file)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"training data {path} does not exist")
    rows = None
    if path.suffix == ".jsonl":
        with path.open("rb") as handle:
            rows = sum(1 for line in handle if line.strip())
    return DataFile(str(path), sha256_file(path), rows)


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def read_manifest(folder: Path) -> Manifest:
    try:
        raw = json.loads((Path(folder) / MANIFEST).read_text())
    except FileNotFoundError:
        raise ModelError(f"{folder} has no {MANIFEST}: not a finished tuned model") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder}/{MANIFEST} is unreadable: {exc}") from None
    try:
        return Manifest.from_json(raw)
    except TypeError as exc:
        raise ModelError(f"{folder}/{MANIFEST} is not a tuned-model manifest: {exc}") from None


def write_manifest(folder: Path, manifest: Manifest) -> None:
    if not manifest.created:
        manifest.created = now_iso()
    if not manifest.package_version:
        from importlib.metadata import PackageNotFoundError, version

        try:
            manifest.package_version = version("dirac-docs-mcp")
        except PackageNotFoundError:
            manifest.package_version = "unknown"
    (Path(folder) / MANIFEST).write_text(json.dumps(manifest.to_json(), indent=1) + "\n")


def new_staging(models_dir: Path, kind: Kind, name: str) -> Path:
    """A fresh folder to build an artifact in (same file system as its final place)."""
    root = tuned_root(models_dir, kind)
    return staging_dir(root, check_name(name))


def work_dir(models_dir: Path, kind: Kind, name: str) -> Path:
    """Where a run keeps its checkpoints until it publishes (``--resume`` finds them here
    by name; a dot folder, so :func:`list_tuned` never takes it for an artifact)."""
    return tuned_root(models_dir, kind) / f".work-{check_name(name)}"


def publish(staging: Path, models_dir: Path, kind: Kind, name: str, *, replace: bool) -> Path:
    """Move a finished artifact (its manifest written) into place. An existing artifact of
    that name is replaced only with ``replace`` (the CLI's ``--force``)."""
    if not (staging / MANIFEST).is_file():
        raise ModelError(f"{staging} has no {MANIFEST}; refusing to publish it")
    target = tuned_dir(models_dir, kind, name)
    if target.exists():
        if not replace:
            raise InvalidInputError(
                f"a tuned {kind} named '{name}' exists in {target.parent}; "
                f"choose another --name or pass --force to replace it"
            )
        shutil.rmtree(target)
    # publish_folder keeps a folder that carries the models' own marker; ours carry a
    # manifest instead, so the rename below is the whole publication
    publish_folder(staging, target)
    return target


def resolve_tuned(value: str, models_dir: Path, kind: Kind) -> Path | None:
    """The folder a setting value names, if it names a tuned artifact of ``kind``:
    ``tuned:<name>`` (looked up under ``models_dir``) or a folder holding a manifest of
    that kind. ``None`` when the value is something else (a built-in name, a plain folder)."""
    if value.startswith(PREFIX):
        name = value[len(PREFIX) :]
        folder = tuned_dir(models_dir, kind, name)
        if not (folder / MANIFEST).is_file():
            have = ", ".join(p.name for p in list_tuned(models_dir, kind)) or "none"
            make = {
                "retriever": f"tune retriever --name {name}",
                "adapter": f"tune generator --name {name}",
                "merged": f"tune export {name}",
            }[kind]
            raise ModelError(
                f"no tuned {kind} named '{name}' in {folder.parent} (have: {have}); "
                f"make one with 'dirac-docs-mcp {make}'"
            )
        return folder
    folder = Path(value).expanduser()
    if (folder / MANIFEST).is_file():
        manifest = read_manifest(folder)
        if manifest.kind == kind:
            return folder.resolve()
    return None


def list_tuned(models_dir: Path, kind: Kind) -> list[Path]:
    root = tuned_root(models_dir, kind)
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if not p.name.startswith(".") and (p / MANIFEST).is_file()
    )


def model_sha256(folder: Path) -> str:
    """The identity of a model folder that a tuned artifact records and is checked against:
    the sha256 its ``.dirac-source.json`` marker holds (the GGUF's for a converted built-in,
    the merged weights' for a ``tune export``), else the sha256 of its one ``*.safetensors``
    file (several: a sha256 over their names and sha256s)."""
    folder = Path(folder)
    marker = read_marker(folder)
    if marker and marker.get("sha256"):
        return str(marker["sha256"])
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise ModelError(f"{folder} holds no *.safetensors weights to identify the base by")
    if len(weights) == 1:
        return sha256_file(weights[0])
    import hashlib

    digest = hashlib.sha256()
    for path in weights:
        digest.update(f"{path.name}\t{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def check_adapter_base(folder: Path, base_folder: Path, base_model_id: str) -> Manifest:
    """The manifest of the adapter in ``folder`` if it was trained on the base model in
    ``base_folder``; a :class:`ModelError` naming both when the base differs (a LoRA
    applied to other weights than its own computes garbage without any error)."""
    manifest = read_manifest(folder)
    if manifest.kind != "adapter":
        raise ModelError(f"{folder} holds a tuned {manifest.kind}, not a generator adapter")
    installed = model_sha256(base_folder)
    if manifest.base_sha256 != installed:
        raise ModelError(
            f"adapter '{manifest.name}' was trained on {manifest.base_model_id} (sha256 "
            f"{manifest.base_sha256[:12]}) but the installed base is {base_model_id} (sha256 "
            f"{installed[:12]}); refusing to load it: set generator_model to its base "
            f"('{manifest.base_model}'), or train a new adapter on this one"
        )
    return manifest
