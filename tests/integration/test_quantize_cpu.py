"""CPU int8 of a real (tiny, random-weight) Qwen2 model: which layers are quantized, the dtype
of those left out, and that the quantized model still ranks tokens like the fp32 one.

Random weights because the policy is about layer types and dtypes, not about what the
weights say; a real model's agreement is measured in benchmarks/bench_generator.py."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from dirac_docs_mcp.generator.quantize import kept_dtype, quantize_int8_dynamic  # noqa: E402
from dirac_docs_mcp.hardware import cpu_has_fast_bf16  # noqa: E402


def tiny_qwen2():
    config = transformers.Qwen2Config(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    return transformers.Qwen2ForCausalLM(config).eval()


def test_int8_keeps_down_proj_in_the_cpus_fast_float_and_agrees_with_fp32() -> None:
    reference = tiny_qwen2()
    model = quantize_int8_dynamic(copy.deepcopy(reference).to(torch.bfloat16))
    expected = torch.bfloat16 if cpu_has_fast_bf16(torch) else torch.float32
    assert kept_dtype(torch) == expected
    layer = model.model.layers[0]
    # the MLP output projection is left out of int8, in bf16 only where the CPU runs it
    # natively (an AVX2-only CPU emulates bf16: the prompt took 3x longer, measured)
    assert isinstance(layer.mlp.down_proj, torch.nn.Linear)
    assert layer.mlp.down_proj.weight.dtype == expected
    # the other projections and the head are dynamic int8
    for module in (layer.self_attn.q_proj, layer.mlp.up_proj, model.lm_head):
        assert type(module).__module__.startswith("torch.ao.nn.quantized.dynamic")
    ids = torch.randint(0, 512, (1, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = reference(ids).logits
        got = model(ids).logits
    assert got.dtype == torch.float32  # the kept layers' hooks hand fp32 on
    agreement = (want.argmax(-1) == got.argmax(-1)).float().mean().item()
    assert agreement >= 0.9, agreement
