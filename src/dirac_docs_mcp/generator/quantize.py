"""Device and quantization choice, and CPU dynamic int8 quantization of a loaded model.

Device ``auto``: CUDA when ``torch.cuda.is_available()``, else CPU. Quantization ``auto``:
bitsandbytes 4-bit NF4 on CUDA; on CPU dynamic int8 (:data:`CPU_AUTO`, measured 2x bf16).
torch is imported lazily.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

from ..errors import ModelError

# CPU default, measured with benchmarks/bench_generator.py on the 2-core dev box
# (Qwen2.5-Coder-0.5B, 469-token prompt, 150 new tokens, 2 threads): bf16 ~11 tok/s, TTFT
# 1.2 s, peak RSS 1.6 GB; int8 (down_proj kept bf16) ~22 tok/s, TTFT 0.9 s, peak RSS 3.8 GB
# at load, 2.2 GB after. Top-1 agreement with fp32 logits: bf16 0.99, this int8 0.96, int8
# of every Linear 0.87 (29 tok/s) -- hence INT8_KEEP_BF16.
CPU_AUTO: Literal["int8", "bf16"] = "int8"
INT8_PER_CHANNEL = True
# Linear layers left in bf16 by CPU int8 (MLP output projections; see quantize_int8_dynamic)
INT8_KEEP_BF16: tuple[str, ...] = ("down_proj", "fc2", "w2")


def resolve_device(setting: str, cuda_available: bool) -> str:
    if setting == "auto":
        return "cuda" if cuda_available else "cpu"
    if setting == "cuda" and not cuda_available:
        raise ModelError("generator_device is 'cuda' but torch sees no CUDA device")
    return setting


def resolve_quantization(setting: str, device: str) -> str:
    if setting == "auto":
        return "nf4" if device == "cuda" else CPU_AUTO
    return setting


def quantize_int8_dynamic(model):
    """Dynamic int8 (int8 weights, activations quantized on the fly) for the Linear layers,
    except the MLP output projections (``INT8_KEEP_BF16``), which stay bf16 (fp32 on a CPU
    without native bf16, :func:`kept_dtype`): their inputs
    carry the activation outliers that make all-int8 drift from the bf16 model. Done one
    decoder block at a time so the peak stays near the bf16 model plus one fp32 block."""
    import gc

    import torch
    from torch.ao.quantization import quantize_dynamic

    qconfig = _int8_qconfig()
    kept: list[torch.nn.Module] = []

    def targets(root: torch.nn.Module) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        for name, module in root.named_modules():
            if not isinstance(module, torch.nn.Linear) or getattr(module, "_dirac_kept", False):
                continue
            if name.rsplit(".", 1)[-1] in INT8_KEEP_BF16:
                module._dirac_kept = True
                kept.append(module)
            else:
                spec[name] = qconfig
        return spec

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated (still in 2.13)
        blocks = next(
            (
                m.layers
                for m in model.modules()
                if isinstance(getattr(m, "layers", None), torch.nn.ModuleList)
            ),
            None,
        )
        for index in range(len(blocks) if blocks is not None else 0):
            spec = targets(blocks[index])
            quantize_dynamic(blocks[index].float(), spec, dtype=torch.qint8, inplace=True)
            gc.collect()  # the fp32 copies sit in reference cycles until collected
        del blocks
        head = model.get_output_embeddings()
        names = [name for name, module in model.named_modules() if module is head]
        if isinstance(head, torch.nn.Linear) and names:
            head.float()
            quantize_dynamic(model, {names[0]: qconfig}, dtype=torch.qint8, inplace=True)
            gc.collect()
        model.float()  # embeddings and norms in fp32 (quantized linears take and give fp32)
        quantize_dynamic(model, targets(model), dtype=torch.qint8, inplace=True)  # the rest
        gc.collect()
    if kept_dtype(torch) == torch.bfloat16:
        for module in kept:
            module.to(torch.bfloat16)
            module.register_forward_pre_hook(_to_bf16)
            module.register_forward_hook(_to_fp32)
    # else they stay fp32 (model.float() above): no casts needed
    _release_free_memory()
    return model


def kept_dtype(torch):
    """The dtype of the layers int8 leaves out: bf16 where oneDNN computes it natively
    (AVX512-BF16/AMX), fp32 elsewhere. Measured with benchmarks/bench_generator.py on an
    AVX2-only AMD EPYC (2 threads, the 469-token prompt, 150 new tokens): kept in bf16, 7.1 s
    to the first token (the prompt's bf16 matmuls are emulated) and 21.5 s in all; in fp32,
    2.2 s and 17.5 s, 3.7 GB peak RSS either way; per answer_question (12 dev questions)
    p50 44.1 s vs 19.6 s."""
    from ..hardware import cpu_has_fast_bf16

    return torch.bfloat16 if cpu_has_fast_bf16(torch) else torch.float32


def _to_bf16(module, args):
    import torch

    return tuple(a.to(torch.bfloat16) if isinstance(a, torch.Tensor) else a for a in args)


def _to_fp32(module, args, output):
    return output.float()


def _int8_qconfig():
    """Per-channel weight scales (per-tensor measured no faster and a little worse)."""
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

    return per_channel_dynamic_qconfig if INT8_PER_CHANNEL else default_dynamic_qconfig


def _release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them; ~0.3 GB after int8)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass
