"""``dirac-docs-mcp tune export NAME``: the adapter merged into its base, saved as a
standalone Hugging Face model folder (``tuned/merged/<name>/`` or ``--out``) that
``DIRAC_MCP_GENERATOR_MODEL=<folder>`` (or ``tuned:<name>``) serves like any model.

The merge is the serving path's (:func:`..generator.transformers_backend.apply_adapter`) on
the base loaded in bf16, the dtype the generator's bf16 mode loads, so the folder generates
the same greedy tokens as base + ``generator_adapter`` in bf16. The folder carries the
models' marker (its own sha256 and model id: an adapter trained on it later is checked
against it) and a manifest naming the adapter it came from.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..config import Settings
from ..errors import InvalidInputError, ModelError
from ..generator.transformers_backend import apply_adapter
from ..models.files import sha256_file, staging_dir, write_marker
from ..models.llm import resolve_generator_model
from ..models.tuned import (
    PREFIX,
    Manifest,
    check_adapter_base,
    check_name,
    model_sha256,
    new_staging,
    publish,
    read_manifest,
    resolve_tuned,
    write_manifest,
)


def export_merged(settings: Settings, name: str, out: Path | None = None, force: bool = False):
    """Merge adapter ``name`` into its base; returns the folder written."""
    check_name(name)
    models_dir = settings.models_dir
    adapter = resolve_tuned(PREFIX + name, models_dir, "adapter")
    assert adapter is not None  # resolve_tuned raises for a missing tuned:<name>
    manifest = read_manifest(adapter)
    spec = resolve_generator_model(manifest.base_model, models_dir)
    check_adapter_base(adapter, spec.path, spec.model_id)
    if out is not None:
        out = Path(out).expanduser()
        if out.exists() and not force and (not out.is_dir() or any(out.iterdir())):
            raise InvalidInputError(f"{out} exists; choose another --out or pass --force")
        staging = staging_dir(out.parent, name)
    else:
        target = models_dir / "tuned" / "merged" / name
        if target.exists() and not force:
            raise InvalidInputError(
                f"a merged model named '{name}' exists in {target.parent}; pass --force to "
                f"replace it"
            )
        staging = new_staging(models_dir, "merged", name)
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(spec.path)
            base = AutoModelForCausalLM.from_pretrained(spec.path, dtype=torch.bfloat16)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load the base model from {spec.path}: {exc}") from exc
        merged = apply_adapter(base, adapter, merge=True)
        merged.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        adapter_sha = sha256_file(adapter / "adapter_model.safetensors")
        model_id = f"{spec.model_id}+lora:{name}:{adapter_sha[:12]}"
        write_marker(  # the sha256 of the merged weights (no marker yet: model_sha256 hashes)
            staging,
            {
                "sha256": model_sha256(staging),
                "source": f"{spec.model_id} with LoRA adapter '{name}' merged (tune export)",
                "model_id": model_id,
            },
        )
        write_manifest(
            staging,
            Manifest(
                kind="merged",
                name=name,
                base_model=manifest.base_model,
                base_model_id=manifest.base_model_id,
                base_sha256=manifest.base_sha256,
                data=manifest.data,
                hyperparameters={**manifest.hyperparameters, "merged_from": str(adapter)},
                metrics=manifest.metrics,
                cost=manifest.cost,
                warnings=manifest.warnings,
            ),
        )
        if out is None:
            return publish(staging, models_dir, "merged", name, replace=force)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
        return out
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
