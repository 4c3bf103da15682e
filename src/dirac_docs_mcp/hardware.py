"""What the CPU can compute fast: one answer for every model that picks a precision.

The embeddings' second model, the CPU int8 generator's kept layers, `tune retriever`'s
autocast and `tune generator`'s training precision all choose bf16 only where the CPU
computes it natively. On a CPU without AVX512-BF16/AMX (e.g. an AVX2-only AMD EPYC) torch
emulates bf16 and it is slower than fp32: measured there, the 0.5B's first token took 7.1 s
with its MLP ``down_proj`` in bf16 against 2.2 s in fp32.
"""

from __future__ import annotations

from typing import Any


def cpu_has_fast_bf16(torch: Any) -> bool:
    """True where oneDNN runs bf16 natively (AVX512-BF16/AMX); False where it cannot tell.
    ``torch`` is passed in so that importing this module never imports torch."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # a torch build without oneDNN (e.g. some ARM wheels)
        return False
