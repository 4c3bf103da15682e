"""``dirac-docs-mcp tune generator``: a peft LoRA adapter of the answer model trained on the
RAFT records of ``qa export --format raft``, evaluated base vs tuned on the held-out records,
kept with its manifest under ``<models_dir>/tuned/adapter/<name>/``.

The run, in order: read and check the records (before any model loads, so bad data fails
in a second); resolve the base (the ``generator_model`` setting or ``--base``); render the
records through the tokenizer's chat template, loss on the assistant turn only
(:mod:`.raft_data`); train (:mod:`.lora_loop`, checkpoints in the run's work folder, so
``--resume`` after a kill continues to the same result); evaluate
(:mod:`.generator_eval`); save the adapter and its manifest in a staging folder and
publish it by rename (:mod:`..models.tuned`). A tuned adapter that is not better than the
base on the held-out records is published with a warning in the manifest and on stderr.

Precision: bf16 on a CPU with native bf16 (AVX512-BF16 / AMX), else fp32 -- measured on the
2-core dev box (AVX512-BF16, 1 thread, LoRA on q,k,v,o): SmolLM2-135M r=8 at 256 tokens bf16
2.9 s/step vs fp32 4.6; Qwen2.5-Coder-0.5B r=16 at 512 tokens bf16 13.7-14.9 s/step (peak
RSS 3.2 GB) vs fp32 23.4 (5.2 GB). The LoRA weights themselves stay fp32 (peft's
``autocast_adapter_dtype``), so AdamW's small updates are not rounded away. QLoRA
(``--quantization nf4``) loads the base in bitsandbytes NF4 on CUDA, as the generator's
serving path does (:mod:`..generator.quantize`).
"""

from __future__ import annotations

import json
import logging
import resource
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import InvalidInputError, ModelError
from ..generator.quantize import resolve_device
from ..models.llm import GeneratorModelSpec, resolve_generator_model, stop_token_ids
from ..models.tuned import (
    Manifest,
    check_name,
    data_file,
    model_sha256,
    new_staging,
    publish,
    tuned_dir,
    work_dir,
    write_manifest,
)
from .generator_eval import compare, not_better
from .lora_loop import Checkpoints, LoopSettings, steps_for, train
from .raft_data import Example, Renderer, locate, read_records, split_by_source

log = logging.getLogger(__name__)

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
QUANTIZATIONS = ("auto", "bf16", "fp32", "nf4")
#: hyper-parameters that do not change the result: a resumed run may change them
NOT_IDENTITY = ("save_every", "threads", "eval_generate", "eval_max_new_tokens")


def fit_caution(kept: int, total: int, dropped: dict[str, int], max_seq_tokens: int) -> list[str]:
    """A warning when most records do not fit ``--max-seq-tokens``: the run would train on a
    few records and look like it worked. Measured: the serving prompt with its worked example
    left 2 of 108 records of a full-corpus export at 512 tokens, hence the default 1024."""
    if not total or kept * 2 >= total:
        return []
    return [
        f"only {kept} of {total} records fit --max-seq-tokens {max_seq_tokens} "
        f"(dropped: {dropped}); raise it (1024 fits most records of the serving prompt)"
    ]


@dataclass
class TuneOptions:
    data: Path
    name: str | None = None
    base: str | None = None  # default: the generator_model setting
    epochs: float = 1.0
    max_steps: int | None = None
    lr: float = 2e-4
    rank: int = 16
    alpha: int | None = None  # default 2 x rank
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ATTENTION
    max_seq_tokens: int = 1024
    batch_size: int = 1
    grad_accum: int = 8
    warmup_steps: int | None = None  # default 5 % of the steps, at most 20
    val_share: float = 0.1
    save_every: int = 25
    seed: int = 0
    quantization: str = "auto"
    device: str = "auto"
    threads: int | None = None
    eval_generate: int = 8
    eval_max_new_tokens: int = 96
    log_candidates: Path | None = None  # log export lines answered by the current pipeline
    resume: bool = False
    force: bool = False
    progress: bool = True

    def check(self) -> None:
        bounds = [
            (0 < self.epochs <= 100, "--epochs must be in (0, 100]"),
            (self.max_steps is None or 1 <= self.max_steps <= 1_000_000, "--max-steps >= 1"),
            (0 < self.lr <= 1, "--lr must be in (0, 1]"),
            (1 <= self.rank <= 1024, "--rank must be in [1, 1024]"),
            (self.alpha is None or 1 <= self.alpha <= 4096, "--alpha must be in [1, 4096]"),
            (0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
            (bool(self.target_modules), "--target-modules names no module"),
            (64 <= self.max_seq_tokens <= 32768, "--max-seq-tokens must be in [64, 32768]"),
            (1 <= self.batch_size <= 256, "--batch-size must be in [1, 256]"),
            (1 <= self.grad_accum <= 1024, "--grad-accum must be in [1, 1024]"),
            (0 <= self.val_share < 1, "--val-share must be in [0, 1)"),
            (1 <= self.save_every <= 1_000_000, "--save-every must be >= 1"),
            (self.quantization in QUANTIZATIONS, f"--quantization: one of {QUANTIZATIONS}"),
            (self.device in ("auto", "cpu", "cuda"), "--device: auto, cpu or cuda"),
            (self.threads is None or 1 <= self.threads <= 256, "--threads in [1, 256]"),
            (0 <= self.eval_generate <= 10_000, "--eval-generate must be >= 0"),
            (1 <= self.eval_max_new_tokens <= 4096, "--eval-max-new-tokens in [1, 4096]"),
        ]
        for ok, message in bounds:
            if not ok:
                raise InvalidInputError(message)


@dataclass
class TuneResult:
    folder: Path
    manifest: Manifest
    resumed_from: int
    warnings: list[str] = field(default_factory=list)


def default_name(base: str, data: Path) -> str:
    stem = Path(base).name if ("/" in base or Path(base).exists()) else base
    label = data.name if data.is_dir() else data.stem
    return check_name(f"{stem}-{label}"[:64].strip(".-_") or "adapter")


def training_precision(quantization: str, device: str) -> str:
    """bf16 where the hardware computes it natively (see the module docstring), else fp32;
    nf4 only on CUDA with bitsandbytes."""
    import torch

    if quantization == "nf4":
        if device != "cuda":
            raise ModelError(
                "--quantization nf4 (QLoRA) needs a CUDA device and bitsandbytes; this "
                "machine has no CUDA device: train in bf16 or fp32 (the default picks one)"
            )
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None:
            raise ModelError(
                "--quantization nf4 needs bitsandbytes: pip install 'dirac-docs-mcp[cuda]'"
            )
        return "nf4"
    if quantization != "auto":
        return quantization
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    from ..hardware import cpu_has_fast_bf16

    return "bf16" if cpu_has_fast_bf16(torch) else "fp32"


def load_for_training(spec: GeneratorModelSpec, device: str, precision: str):
    """(model, tokenizer) of the base, frozen, ready for peft."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelError(
            f"tune generator needs torch, transformers and peft ({exc}); "
            "install them with pip install 'dirac-docs-mcp[tune]'"
        ) from None
    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if precision != "fp32" else torch.float32}
    if precision == "nf4":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        )
        kwargs["device_map"] = {"": 0}
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.path)
        model = AutoModelForCausalLM.from_pretrained(spec.path, **kwargs)
    except (OSError, ValueError, ImportError, RuntimeError) as exc:
        raise ModelError(f"cannot load the base model from {spec.path}: {exc}") from exc
    if precision == "nf4":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model = model.to(device)
    model.config.use_cache = False  # no KV cache while training
    return model, tokenizer


def _hyperparameters(options: TuneOptions, steps: int, warmup: int, precision: str) -> dict:
    return {
        "epochs": options.epochs,
        "max_steps": options.max_steps,
        "steps": steps,
        "lr": options.lr,
        "schedule": f"linear warm-up {warmup} steps, linear decay to 0",
        "warmup_steps": warmup,
        "optimizer": "AdamW (weight decay 0), gradient norm clipped at 1.0",
        "rank": options.rank,
        "alpha": options.alpha or 2 * options.rank,
        "dropout": options.dropout,
        "target_modules": list(options.target_modules),
        "max_seq_tokens": options.max_seq_tokens,
        "batch_size": options.batch_size,
        "grad_accum": options.grad_accum,
        "val_share": options.val_share,
        "seed": options.seed,
        "precision": precision,
        "loss": "assistant turn only (prompt masked), through the tokenizer's chat template",
        "prompt": "the records' messages (the serving prompt of qa export --format raft); "
        "longer ones re-rendered with shorter passages",
        "save_every": options.save_every,
        "threads": options.threads,
        "eval_generate": options.eval_generate,
        "eval_max_new_tokens": options.eval_max_new_tokens,
    }


def _identity(base_sha: str, data: list, hyper: dict) -> dict:
    return {
        "base_sha256": base_sha,
        "data": [d.sha256 for d in data],
        "hyperparameters": {k: v for k, v in hyper.items() if k not in NOT_IDENTITY},
    }


def _log_records(
    settings: Settings, base: str, options: TuneOptions, work: Path
) -> tuple[list[dict], dict]:
    """The --log-candidates records, answered once per run: kept in the work folder, so a
    resumed run trains on the same records without answering again."""
    from .log_candidates import answer_candidates

    saved = work / "log_candidates.jsonl"
    if options.resume and saved.is_file():
        state = json.loads((work / "log_candidates.json").read_text())
        return (read_records(saved) if saved.stat().st_size else []), state
    records, counts = answer_candidates(
        settings, base, options.log_candidates, options.progress, options.threads
    )
    work.mkdir(parents=True, exist_ok=True)
    saved.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    (work / "log_candidates.json").write_text(json.dumps(counts) + "\n")
    return records, counts


def _refuse_interrupted(folder: Path, name: str) -> None:
    latest = Checkpoints(folder).latest()
    if latest is not None:
        step = int(latest.name.split("-")[-1])
        raise InvalidInputError(
            f"an interrupted run of '{name}' has a checkpoint at step {step} in {folder}: "
            f"pass --resume to continue it, or --force to start over"
        )


def _prepare_work(folder: Path, identity: dict) -> Path | None:
    """The checkpoint to resume from (None: start at step 0), after checking that the run
    in ``folder`` is this run (a checkpoint without --resume was refused earlier)."""
    latest = Checkpoints(folder).latest()
    run_file = folder / "run.json"
    if latest is not None:
        try:
            before = json.loads(run_file.read_text())
        except (OSError, ValueError):
            before = None
        if before != identity:
            raise InvalidInputError(
                f"the checkpoint in {folder} is of another run (differs in: "
                f"{', '.join(_differences(before or {}, identity))}); resume with the same "
                f"data, base and hyper-parameters, or pass --force without --resume to start over"
            )
    folder.mkdir(parents=True, exist_ok=True)
    run_file.write_text(json.dumps(identity, indent=1) + "\n")
    return latest


def _differences(before: dict, now: dict) -> list[str]:
    out = [k for k in ("base_sha256", "data") if before.get(k) != now.get(k)]
    old, new = before.get("hyperparameters", {}), now["hyperparameters"]
    return out + sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _evaluate(
    model,
    tokenizer,
    spec: GeneratorModelSpec,
    device: str,
    precision: str,
    settings: Settings,
    options: TuneOptions,
    examples: list[Example],
) -> tuple[dict[str, Any], list[str]]:
    """(base vs tuned figures on the held-out examples, warnings): the model is answered
    through a generator that wraps it, as the answer tool's would."""
    if not examples:
        return {}, ["no validation records: base vs tuned was not measured"]
    from ..generator.transformers_backend import TransformersGenerator

    generator = TransformersGenerator(
        spec,
        device=device,
        quantization=precision,
        max_context_tokens=settings.generator_max_context_tokens,
        default_max_new_tokens=options.eval_max_new_tokens,
        default_timeout_s=settings.generator_timeout_s,
        loaded=(model, tokenizer),
    )
    pad_id = generator.pad_id
    figures = compare(
        model,
        generator,
        examples,
        settings,
        pad_id,
        model.device,
        options.eval_generate,
        options.eval_max_new_tokens,
    )
    cautions = [
        f"the tuned adapter is not better than the base on the held-out records: {why}"
        for why in not_better(figures)
    ]
    return figures, cautions


def _device_label(device: str, threads: int) -> str:
    if device == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({threads} threads)"


def tune_generator(settings: Settings, options: TuneOptions) -> TuneResult:
    started = time.perf_counter()
    options.check()
    files = locate(options.data)
    train_records = read_records(files.train)
    if files.validation is not None:
        validation_records = read_records(files.validation)
    else:
        train_records, validation_records = split_by_source(
            train_records, options.val_share, options.seed
        )
    base = options.base or settings.generator_model
    name = check_name(options.name or default_name(base, Path(options.data)))
    models_dir = settings.models_dir
    target = tuned_dir(models_dir, "adapter", name)
    if (target / "manifest.json").exists() and not options.force:
        raise InvalidInputError(
            f"a tuned adapter named '{name}' exists in {target.parent}; choose another "
            f"--name or pass --force to replace it"
        )
    work = work_dir(models_dir, "adapter", name)
    if options.force and not options.resume:
        shutil.rmtree(work, ignore_errors=True)  # start over
    elif not options.resume:
        _refuse_interrupted(work, name)  # before minutes of model loading
    spec = resolve_generator_model(base, models_dir)
    base_sha = model_sha256(spec.path)
    log_counts = None
    if options.log_candidates is not None:
        extra, log_counts = _log_records(settings, base, options, work)
        train_records = train_records + extra

    import torch

    device = resolve_device(options.device, torch.cuda.is_available())
    precision = training_precision(options.quantization, device)
    threads = options.threads or settings.generator_threads
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    model, tokenizer = load_for_training(spec, device, precision)
    stops = stop_token_ids(tokenizer, model.generation_config)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    chars = [c for c in (files.export_chars, settings.answer_max_chars_per_passage) if c]
    renderer = Renderer(tokenizer, stops, options.max_seq_tokens, chars)
    train_examples = [e for e in map(renderer.example, train_records) if e is not None]
    validation_examples = [e for e in map(renderer.example, validation_records) if e is not None]
    log.info(
        "records: %d train, %d validation, %d shortened to fit, dropped %s",
        len(train_examples),
        len(validation_examples),
        renderer.shortened,
        dict(renderer.dropped),
    )
    if not train_examples:
        raise InvalidInputError(
            f"no training record fits --max-seq-tokens {options.max_seq_tokens} "
            f"({dict(renderer.dropped)}); raise it"
        )
    fit_cautions = fit_caution(
        len(train_examples) + len(validation_examples),
        len(train_records) + len(validation_records),
        dict(renderer.dropped),
        options.max_seq_tokens,
    )
    for caution in fit_cautions:  # said before the hours of training, not after
        print(f"WARNING: {caution}", file=sys.stderr)

    steps = options.max_steps or steps_for(
        len(train_examples), options.batch_size, options.grad_accum, options.epochs
    )
    warmup = options.warmup_steps if options.warmup_steps is not None else min(20, steps // 20)
    loop = LoopSettings(
        lr=options.lr,
        steps=steps,
        batch_size=options.batch_size,
        grad_accum=options.grad_accum,
        warmup_steps=max(warmup, 1),
        save_every=options.save_every,
        seed=options.seed,
    )
    hyper = _hyperparameters(options, steps, loop.warmup_steps, precision)
    data = files.data_files()
    if options.log_candidates is not None:
        data.append(data_file(options.log_candidates))
    latest = _prepare_work(work, _identity(base_sha, data, hyper))

    from peft import LoraConfig, get_peft_model

    torch.manual_seed(options.seed)  # the LoRA initialisation
    config = LoraConfig(
        r=options.rank,
        lora_alpha=options.alpha or 2 * options.rank,
        lora_dropout=options.dropout,
        target_modules=list(options.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        with warnings.catch_warnings():  # peft 0.21 calls a transformers 5 deprecated name
            warnings.simplefilter("ignore", FutureWarning)
            model = get_peft_model(model, config)
    except ValueError as exc:
        raise InvalidInputError(f"--target-modules: {exc}") from None
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=options.lr, weight_decay=0.0)
    checkpoints = Checkpoints(work)
    start_step, history, earlier_seconds = 0, [], 0.0
    if latest is not None:
        state = checkpoints.load(latest, model, optimizer)
        start_step, history = int(state["step"]), list(state["history"])
        earlier_seconds = float(state.get("train_seconds", 0.0))
        print(f"resuming '{name}' from step {start_step} of {steps}", file=sys.stderr)

    bar = None
    if options.progress:
        from tqdm import tqdm

        bar = tqdm(
            total=steps, initial=start_step, unit="step", desc=f"tune {name}", file=sys.stderr
        )

    train_started = time.perf_counter()

    def on_step(done: int, loss: float) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"loss {loss:.3f}")

    try:
        history = train(
            model,
            optimizer,
            train_examples,
            loop,
            checkpoints,
            pad_id,
            model.device,
            start_step,
            history,
            on_step,
            # the training seconds so far, kept in each checkpoint for the manifest's cost
            lambda: {"train_seconds": earlier_seconds + time.perf_counter() - train_started},
        )
    finally:
        if bar is not None:
            bar.close()
    session_seconds = time.perf_counter() - train_started
    trained = steps - start_step

    edge = max(1, min(5, len(history) // 2))
    metrics: dict[str, Any] = {
        "records": {
            "train": len(train_examples),
            "validation": len(validation_examples),
            "shortened_to_fit": renderer.shortened,
            "dropped": dict(renderer.dropped),
            "log_candidates": log_counts,
        },
        # means over the first and last few steps (at most 5, never overlapping)
        "train_loss_first": round(sum(history[:edge]) / edge, 4),
        "train_loss_last": round(sum(history[-edge:]) / edge, 4),
        "train_loss_by_step": [round(x, 4) for x in history],
    }
    eval_started = time.perf_counter()
    evaluation, cautions = _evaluate(
        model, tokenizer, spec, device, precision, settings, options, validation_examples
    )
    metrics.update(evaluation)
    for caution in cautions:
        print(f"WARNING: {caution}", file=sys.stderr)

    staging = new_staging(models_dir, "adapter", name)
    try:
        model.save_pretrained(str(staging))
        (staging / "README.md").unlink(missing_ok=True)  # peft's empty model card
        manifest = Manifest(
            kind="adapter",
            name=name,
            base_model=base,
            base_model_id=spec.model_id,
            base_sha256=base_sha,
            data=data,
            hyperparameters=hyper,
            metrics=metrics,
            cost={
                "wall_seconds": round(time.perf_counter() - started, 1),
                "train_seconds": round(earlier_seconds + session_seconds, 1),
                "steps_this_run": trained,
                "seconds_per_step": round(session_seconds / trained, 3) if trained else None,
                "eval_seconds": round(time.perf_counter() - eval_started, 1),
                "resumed_from_step": start_step,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "peak_cuda_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)
                if device == "cuda"
                else None,
                "device": _device_label(device, threads),
                "torch": torch.__version__,
            },
            warnings=fit_cautions + cautions,
        )
        write_manifest(staging, manifest)
        folder = publish(staging, models_dir, "adapter", name, replace=options.force)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    return TuneResult(folder, manifest, start_step, cautions)
