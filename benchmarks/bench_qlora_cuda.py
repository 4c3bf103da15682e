"""Memory and speed of QLoRA (4-bit NF4 base + LoRA) vs bf16 LoRA for the answer model on
CUDA, with random weights of Qwen2.5-Coder-0.5B's shape (the GPU machine cannot fetch the
real weights; memory and speed do not depend on their values).

    python benchmarks/bench_qlora_cuda.py [--seq 512 --batch 1 --rank 16 --steps 30] \\
        [--json benchmarks/results/h200_qlora_qwen05_random_init.json]

The dimensions are those of /work/data/models/qwen2.5-coder-0.5b/config.json (the converted
Q4_K_M GGUF: untied 151,936-token embeddings), hard-coded so the script needs no weights.
The defaults are the CPU run's settings (``tune generator`` defaults: 512 tokens, batch 1,
LoRA r=16 alpha 32 on q,k,v,o). Each step is ``tune generator``'s own loss
(:func:`dirac_docs_mcp.tuning.lora_loop.token_loss`: the head only where an answer token is
predicted) on random ids, the last ``--answer-tokens`` of each row as the answer, then
AdamW. Prints peak ``torch.cuda.max_memory_allocated`` (load, and load + training) and
steps/s after a warm-up. The first team's limit was a 4 GB GTX 1050: the report says
whether each peak fits 4 GiB.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

# Qwen2.5-Coder-0.5B-Instruct as converted here (config.json of the data dir's model)
QWEN05 = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "hidden_act": "silu",
    "bos_token_id": 151643,
    "eos_token_id": 151645,
}
GIB4 = 4 * 2**30
DEVICE = "cuda"  # a module constant so a CPU dry run of the bf16 path can swap it


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seq", type=int, default=512, help="tokens per row (512)")
    parser.add_argument("--batch", type=int, default=1, help="rows per step (1)")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank (16)")
    parser.add_argument("--alpha", type=int, default=None, help="LoRA alpha (2 x rank)")
    parser.add_argument("--answer-tokens", type=int, default=48, help="loss tokens per row")
    parser.add_argument("--steps", type=int, default=30, help="measured steps (30)")
    parser.add_argument("--warmup", type=int, default=3, help="steps before timing (3)")
    parser.add_argument("--modes", default="nf4,bf16", help="comma list of nf4, bf16")
    parser.add_argument(
        "--gradient-checkpointing", action="store_true", help="recompute activations"
    )
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"nf4", "bf16"}:
        parser.error("--modes takes nf4 and/or bf16")
    if not 0 < args.answer_tokens < args.seq:
        parser.error("--answer-tokens must be between 1 and --seq - 1")
    args.modes = modes
    return args


def random_model_folder(folder: Path) -> Path:
    """A bf16 model of the 0.5B's shape with random weights, saved so that the NF4 run
    loads it through from_pretrained + BitsAndBytesConfig, as ``tune generator`` does."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(Qwen2Config(**QWEN05), dtype=torch.bfloat16)
    model.save_pretrained(folder)
    return folder


def run_mode(mode: str, folder: Path, args: argparse.Namespace) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from dirac_docs_mcp.tuning.lora_loop import IGNORE, token_loss

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    kwargs: dict = {"dtype": torch.bfloat16}
    if mode == "nf4":  # generator/quantize.py's and tune generator's NF4 settings
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        )
        kwargs["device_map"] = {"": 0 if DEVICE == "cuda" else DEVICE}
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    if mode == "nf4":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=args.gradient_checkpointing
        )
    else:
        model = model.to(DEVICE)
        if args.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.enable_input_require_grads()
    model.config.use_cache = False
    load_s = time.perf_counter() - started
    loaded_mb = torch.cuda.memory_allocated() / 2**20
    torch.manual_seed(0)
    model = get_peft_model(
        model,
        LoraConfig(
            r=args.rank,
            lora_alpha=args.alpha or 2 * args.rank,
            lora_dropout=0.05,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            task_type="CAUSAL_LM",
        ),
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    ids = torch.randint(0, QWEN05["vocab_size"], (args.batch, args.seq), device=DEVICE)
    mask = torch.ones_like(ids)
    labels = ids.clone()
    labels[:, : args.seq - args.answer_tokens] = IGNORE
    model.train()
    losses = []
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            torch.cuda.synchronize()
            timed = time.perf_counter()
        loss, tokens = token_loss(model, ids, mask, labels)
        (loss / tokens).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()) / tokens)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - timed
    peak = torch.cuda.max_memory_allocated()
    return {
        "mode": mode,
        "load_s": round(load_s, 2),
        "memory_after_load_mb": round(loaded_mb, 1),
        "peak_allocated_mb": round(peak / 2**20, 1),
        "peak_fits_4gib": peak < GIB4,
        "steps_per_s": round(args.steps / seconds, 3),
        "seconds_per_step": round(seconds / args.steps, 4),
        "tokens_per_s": round(args.steps * args.batch * args.seq / seconds, 1),
        "trainable_parameters": trainable,
        "linear4bit_layers": sum(1 for m in model.modules() if type(m).__name__ == "Linear4bit"),
        "loss_first_last": [round(losses[0], 3), round(losses[-1], 3)],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(
            "bench_qlora_cuda: no CUDA device (torch sees none); this benchmark measures GPU "
            "memory and needs one. On CPU, 'dirac-docs-mcp tune generator' reports seconds "
            "per step and peak RSS in its manifest.",
            file=sys.stderr,
        )
        return 2
    if "nf4" in args.modes:
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None:
            print("bench_qlora_cuda: nf4 needs bitsandbytes (pip install bitsandbytes)")
            return 2
    out = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "shape": "Qwen2.5-Coder-0.5B (random weights)",
        "config": QWEN05,
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as temp:
        folder = random_model_folder(Path(temp) / "qwen05-random")
        for mode in args.modes:
            result = run_mode(mode, folder, args)
            out["runs"].append(result)
            print(
                f"{mode}: peak {result['peak_allocated_mb']:.0f} MiB allocated "
                f"(after load {result['memory_after_load_mb']:.0f} MiB), "
                f"{result['steps_per_s']:.2f} steps/s at seq {args.seq} x batch {args.batch}, "
                f"fits 4 GiB: {result['peak_fits_4gib']}",
                flush=True,
            )
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
