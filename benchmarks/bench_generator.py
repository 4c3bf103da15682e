"""Generator speed: our Generator vs a plain ``model.generate`` on the same ~400-token prompt.

Prints load time, prompt tokens, time to first token, new tokens, tokens/s, peak RSS (and
peak VRAM on CUDA) and writes the same figures as JSON to --out.

    python benchmarks/bench_generator.py --model qwen2.5-coder-0.5b --quantization int8 \
        --threads 2 --out runs/gen-int8.json
    # random weights from a config folder (config.json + tokenizer files): honest load,
    # VRAM and speed figures where real weights cannot be copied (garbage text)
    python benchmarks/bench_generator.py --random-init .device/qwen05-config \
        --device cuda --quantization nf4 --out runs/gen-nf4.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

SYSTEM = (
    "You answer questions about the DIRAC grid middleware using only the numbered passages. "
    "Cite passages as [n]. If the passages do not contain the answer, say you don't know."
)
PASSAGES = [
    (
        "UserGuide/GettingStarted/UserJobs/CommandLine/index.rst > Submitting jobs",
        "Jobs are described in JDL (Job Description Language) files. A minimal JDL gives the "
        "Executable, the Arguments, the StdOutput and StdError file names and the "
        "OutputSandbox, the list of small files returned to the user when the job ends. "
        "The command dirac-wms-job-submit takes one or more JDL files and prints the job "
        "identifier of each submitted job. Keep the identifiers: every other command needs "
        "them. With the -f option the identifiers are also written to a file, which later "
        "commands can read with their own -f option.",
    ),
    (
        "UserGuide/GettingStarted/UserJobs/CommandLine/index.rst > Monitoring jobs",
        "dirac-wms-job-status shows the current status of one or more jobs: Received, "
        "Checking, Waiting, Matched, Running, Completed, Done, Failed or Killed, together "
        "with the minor status and the site. dirac-wms-job-logging-info lists the whole "
        "history of state changes with their time stamps and sources, which helps to find "
        "where a failed job stopped. dirac-wms-job-peek prints the last lines of the "
        "standard output of a running job without waiting for it to finish.",
    ),
    (
        "UserGuide/GettingStarted/UserJobs/CommandLine/index.rst > Retrieving output",
        "When a job is Done, dirac-wms-job-get-output downloads its output sandbox into a "
        "directory named after the job identifier; the -D option chooses another parent "
        "directory. Files larger than the sandbox limit should instead be uploaded to a "
        "storage element with the OutputData and OutputSE parameters of the JDL, and "
        "retrieved with dirac-dms-get-file using their logical file name. Output sandboxes "
        "are kept for a limited time only, so retrieve them soon after the jobs finish.",
    ),
]
QUESTION = (
    "I submitted a job with dirac-wms-job-submit and it now shows Done. How do I get the "
    "files it wrote to standard output, and what should I do with large result files?"
)


def rag_messages() -> list[dict[str, str]]:
    numbered = "\n\n".join(
        f"[{i}] ({source})\n{text}" for i, (source, text) in enumerate(PASSAGES, start=1)
    )
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Passages:\n\n{numbered}\n\nQuestion: {QUESTION}"},
    ]


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB."""
    current = peak = 0.0
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return current, peak


def random_model_dir(config_dir: Path, work: Path) -> Path:
    """A model folder with random weights built from config_dir's config.json + tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(config_dir)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    out = work / "random-model"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(config_dir).save_pretrained(out)
    if (config_dir / "generation_config.json").is_file():
        shutil.copyfile(config_dir / "generation_config.json", out / "generation_config.json")
    del model
    return out


class _FirstToken:
    """A streamer for the plain baseline: notes when the first new token arrives."""

    def __init__(self) -> None:
        self.calls = 0
        self.first_at: float | None = None

    def put(self, value) -> None:
        self.calls += 1
        if self.calls == 2 and self.first_at is None:  # call 1 is the prompt
            self.first_at = time.monotonic()

    def end(self) -> None:
        pass


def plain_generate(generator, prompt_ids: list[int], max_new_tokens: int) -> dict:
    import torch

    model = generator.model
    input_ids = torch.tensor([prompt_ids], device=model.device)
    streamer = _FirstToken()
    start = time.monotonic()
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=generator.stop_ids,
            pad_token_id=generator.pad_id,
            streamer=streamer,
        )
    end = time.monotonic()
    new = int(out.shape[1]) - len(prompt_ids)
    first = streamer.first_at or end
    return {
        "new_tokens": new,
        "seconds": end - start,
        "ttft_s": first - start,
        "tokens_per_s": (new - 1) / (end - first) if new > 1 and end > first else 0.0,
        "text": generator.tokenizer.decode(out[0, len(prompt_ids) :], skip_special_tokens=True),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b", help="built-in name or path")
    parser.add_argument("--random-init", type=Path, help="config folder: random weights")
    parser.add_argument(
        "--quantization", default="auto", choices=["auto", "nf4", "int8", "bf16", "fp32"]
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=150)
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of each path")
    parser.add_argument("--no-plain", action="store_true", help="skip the model.generate baseline")
    parser.add_argument("--models-dir", type=Path, help="default: the settings' models_dir")
    parser.add_argument("--out", type=Path)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)

    import torch

    from dirac_docs_mcp.generator import TransformersGenerator, resolve_device, resolve_quantization
    from dirac_docs_mcp.models.llm import GeneratorModelSpec, resolve_generator_model

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device, torch.cuda.is_available())
    quantization = resolve_quantization(args.quantization, device)
    work = Path(tempfile.mkdtemp(prefix="bench-gen-"))
    result: dict = {
        "model": str(args.random_init or args.model),
        "random_init": bool(args.random_init),
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor(),
        "quantization": quantization,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "max_new_tokens": args.max_new_tokens,
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    try:
        start = time.perf_counter()
        if args.random_init:
            path = random_model_dir(args.random_init, work)
            spec = GeneratorModelSpec(f"random:{args.random_init.name}", path, "random init")
            result["random_build_s"] = round(time.perf_counter() - start, 2)
        else:
            if args.models_dir is None:
                from dirac_docs_mcp.config import load_settings

                args.models_dir = load_settings().models_dir
            spec = resolve_generator_model(args.model, args.models_dir)
            result["resolve_s"] = round(time.perf_counter() - start, 2)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        generator = TransformersGenerator(spec, device=device, quantization=quantization)
        result["load_s"] = round(time.perf_counter() - start, 2)
        result["rss_after_load_mb"], result["peak_rss_load_mb"] = map(round, rss_mb())
        messages = rag_messages()
        prompt_ids, _, _ = generator._prompt_ids(messages, args.max_new_tokens)
        result["prompt_tokens"] = len(prompt_ids)
        generator.generate(messages, max_new_tokens=4)  # warm-up (kernels, allocator)

        ours, plain = [], []
        for _ in range(max(1, args.repeat)):
            g = generator.generate(messages, max_new_tokens=args.max_new_tokens, timeout_s=3600)
            ours.append(g.as_dict())
            if not args.no_plain:
                plain.append(plain_generate(generator, prompt_ids, args.max_new_tokens))

        def summary(runs: list[dict]) -> dict:
            if not runs:
                return {}
            return {
                "new_tokens": runs[-1]["new_tokens"],
                "ttft_s": round(statistics.median(r["ttft_s"] or 0 for r in runs), 3),
                "tokens_per_s": round(statistics.median(r["tokens_per_s"] for r in runs), 2),
                "seconds": round(statistics.median(r["seconds"] for r in runs), 2),
                "runs_tokens_per_s": [round(r["tokens_per_s"], 2) for r in runs],
                "text": runs[-1]["text"][:300],
            }

        result["generator"] = summary(ours)
        result["plain_generate"] = summary(plain)
        result["peak_rss_mb"] = round(rss_mb()[1])
        if device == "cuda":
            result["peak_vram_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
        result["load_average_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    finally:
        shutil.rmtree(work, ignore_errors=True)

    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
