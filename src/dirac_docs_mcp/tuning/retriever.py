"""``dirac-docs-mcp tune retriever``: the dense model fine-tuned on the indexed docs.

1. pairs: pseudo-queries cut from the index's chunks (:mod:`.pseudo_queries`), plus the
   questions of a ``generate_qa_pairs`` file if given; queries within
   ``qa_max_holdout_similarity`` cosine of an evaluation question are dropped; a seeded
   share of the chunks (with their pairs) is held out for validation;
2. a hard negative per training pair, mined with the project's own retrieval (the
   best-ranked chunk of another document: what the fused ranking confuses today);
3. sentence-transformers' MultipleNegativesRankingLoss (in-batch + the mined negative);
4. validation (recall@k / MRR of the held-out pseudo-queries) of the base and the tuned
   model; an int8 ONNX copy of a BERT-like model (the ``minilm-int8`` speed) and its top-10
   agreement with the tuned fp32 model;
5. the folder ``<models_dir>/tuned/retriever/<name>/`` with ``manifest.json``, published
   only once complete (:mod:`dirac_docs_mcp.models.tuned`).

The checks of a run (validation, agreement) are in :mod:`.validation`, the int8 export in
:mod:`.onnx_export`. Just over 500 lines: :func:`tune_retriever` is one run whose phases
share their counts, timings and figures, which all end up in one manifest.

Cost on the project's 2-core CPU (one torch thread, beside another job), MiniLM, full
corpus: see the README's "Tuning the retriever" (the figures are also in each manifest).
"""

from __future__ import annotations

import json
import logging
import random
import resource
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError, ModelError
from ..models.embedding import EmbeddingModelSpec, resolve_dense2_model, resolve_embedding_model
from ..models.files import sha256_file
from ..models.registry import DENSE2_BUILTINS, EMBEDDING_BUILTINS
from ..models.tuned import (
    DataFile,
    Manifest,
    check_name,
    data_file,
    new_staging,
    publish,
    tuned_dir,
    write_manifest,
)
from ..runtime import Runtime
from ..store import StoredChunk
from ..tools.qa_export import (
    corpus_version,
    holdout_filter,
    load_holdout_questions,
    training_pairs,
)
from ..tools.qa_files import read_pairs
from ..tools.search import require_index, retrieve
from .onnx_export import export_int8_onnx
from .pseudo_queries import (
    SYNTHETIC_KINDS,
    TrainingPair,
    document_text,
    pairs_from_qa_file,
    pseudo_queries,
    split_pairs,
)
from .validation import (
    encode,
    encode_onnx,
    rankings,
    score_rankings,
    top10_agreement,
    validation_set,
)

log = logging.getLogger(__name__)

ProgressFn = Callable[[str], None]
#: top-10 overlap of the int8 ONNX copy with the tuned fp32 model below this is reported
#: (the built-in minilm-int8 agrees 0.976 with its fp32 base on the full corpus's set)
MIN_INT8_AGREEMENT = 0.95


@dataclass
class RetrieverTuning:
    """What to tune and how (the CLI's flags; defaults are the ``tune_retriever_*``
    settings)."""

    name: str
    base: str = "minilm"
    kinds: tuple[str, ...] = SYNTHETIC_KINDS
    pairs_file: Path | None = None
    holdout: Path | None = None
    holdout_threshold: float = 0.85
    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 3e-5
    max_pairs: int = 2000
    max_seq_length: int = 128
    hard_negatives: bool = True
    validation_share: float = 0.1
    seed: int = 0
    threads: int | None = None
    onnx: bool = True
    replace: bool = False


@dataclass
class TuneReport:
    folder: Path
    manifest: Manifest
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BaseModel:
    """The model tuning starts from: its folder, the id an index knows it by, its weights."""

    setting: str
    path: Path
    model_id: str
    sha256: str
    max_tokens: int


# --------------------------------------------------------------------------------------
# base model
# --------------------------------------------------------------------------------------


def resolve_base(name: str, models_dir: Path) -> BaseModel:
    """A sentence-transformers folder to start from: ``minilm`` (the fp32 weights of the
    default ``minilm-int8``), ``embeddinggemma-300m`` once installed, or a folder."""
    if name == "minilm-int8":
        name = "minilm"  # the int8 ONNX file cannot be trained; its fp32 source can
    spec: EmbeddingModelSpec
    if name in EMBEDDING_BUILTINS:
        spec = resolve_embedding_model(name, models_dir)
    elif name in DENSE2_BUILTINS:
        spec = resolve_dense2_model(name, models_dir)
    else:
        folder = Path(name).expanduser()
        if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
            raise ModelError(
                f"base model '{name}' is neither a built-in (minilm, embeddinggemma-300m) "
                f"nor a sentence-transformers folder"
            )
        spec = resolve_dense2_model(str(folder), models_dir)
    weights = spec.path / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"{spec.path} has no model.safetensors to fine-tune")
    return BaseModel(name, spec.path, spec.model_id, sha256_file(weights), spec.max_tokens)


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------


def all_chunks(runtime: Runtime) -> list[StoredChunk]:
    """Every chunk of the index, document by document, in document order."""
    store = require_index(runtime)
    return [c for source in sorted(store.manifest()) for c in store.chunks_of(source)]


def mine_negatives(
    runtime: Runtime, pairs: Sequence[TrainingPair], chunks: Sequence[StoredChunk], seed: int
) -> tuple[list[str], int]:
    """(a negative passage per pair, how many were mined): the best-ranked chunk of the
    project's own retrieval (top 10) from ANOTHER document that does not contain the query
    itself; a chunk of the same document may answer it too (a false negative), and the
    official scorer counts a document, not a chunk. A pair without one gets a random chunk."""
    rng = random.Random(seed)
    negatives, mined = [], 0
    for pair in pairs:
        found = None
        for hit in retrieve(runtime, pair.question, 10):
            if hit.source != pair.source and pair.question not in hit.text:
                found = hit
                break
        if found is None:
            other = rng.choice(chunks)
            while other.source == pair.source and len({c.source for c in chunks}) > 1:
                other = rng.choice(chunks)
            found = other
        else:
            mined += 1
        negatives.append(document_text(found))
    return negatives, mined


# --------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _cpu_s() -> float:
    """CPU seconds of this process: on a shared machine the wall time says little."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round(usage.ru_utime + usage.ru_stime, 1)


def _write_pairs(path: Path, pairs: Sequence[TrainingPair]) -> DataFile:
    with path.open("w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(json.dumps(asdict(pair), ensure_ascii=False) + "\n")
    found = data_file(path)
    found.path = path.name  # relative: the folder is renamed when published
    return found


def _fast_bf16() -> bool:
    import torch

    from ..hardware import cpu_has_fast_bf16

    return torch.cuda.is_available() or cpu_has_fast_bf16(torch)


def tune_retriever(
    runtime: Runtime, options: RetrieverTuning, progress: ProgressFn | None = None
) -> TuneReport:
    """Tune, validate, export and publish; see the module docstring."""
    say = progress or (lambda message: log.info("%s", message))
    check_name(options.name)
    if not 0 < options.validation_share < 0.5:
        raise InvalidInputError(
            f"validation share must be in (0, 0.5), got {options.validation_share}"
        )
    unknown = set(options.kinds) - set(SYNTHETIC_KINDS)
    if unknown or not options.kinds:
        raise InvalidInputError(
            f"pseudo-query kinds must be among {', '.join(SYNTHETIC_KINDS)}, got "
            f"{', '.join(sorted(unknown)) or 'none'}"
        )
    try:
        import torch
        from datasets import Dataset
        from sentence_transformers import (
            SentenceTransformer,
            SentenceTransformerTrainer,
            SentenceTransformerTrainingArguments,
        )
        from sentence_transformers.base.sampler import BatchSamplers
        from sentence_transformers.sentence_transformer.losses import (
            MultipleNegativesRankingLoss,
        )
    except ImportError as exc:
        raise ModelError(
            f"tuning needs torch, sentence-transformers and datasets: "
            f"pip install 'dirac-docs-mcp[tune]' ({exc})"
        ) from exc

    settings = runtime.settings
    existing = tuned_dir(settings.models_dir, "retriever", options.name)
    if existing.exists() and not options.replace:  # said now, not after the training
        raise InvalidInputError(
            f"a tuned retriever named '{options.name}' exists in {existing.parent}; "
            f"choose another --name or pass --force to replace it"
        )
    started = time.perf_counter()
    timings: dict[str, float] = {}
    if options.threads:
        torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    base = resolve_base(options.base, settings.models_dir)

    # --- pairs ----------------------------------------------------------------------------
    chunks = all_chunks(runtime)
    if not chunks:
        raise InvalidInputError(f"the index at {runtime.store.location} holds no chunks")
    pairs = pseudo_queries(chunks, options.kinds, options.seed)
    data_files: list[DataFile] = []
    counts: dict[str, Any] = {"chunks": len(chunks), "pseudo_queries": dict(_kinds(pairs))}
    if options.pairs_file is not None:
        qa_rows, excluded = training_pairs(read_pairs(options.pairs_file))
        by_id = {c.id: c for c in chunks}
        qa, missing = pairs_from_qa_file(qa_rows, by_id)
        pairs += qa
        data_files.append(data_file(options.pairs_file))
        counts["qa_file"] = {
            "questions": len(qa),
            "excluded": dict(excluded),
            "chunk_not_in_index": missing,
        }
    holdout_report: dict[str, Any] = {"holdout": None}
    if options.holdout is not None:
        questions = load_holdout_questions(options.holdout)
        embed = runtime.encoders.dense.embed_documents
        pairs, dropped = holdout_filter(pairs, questions, embed, options.holdout_threshold)
        data_files.append(data_file(options.holdout))
        holdout_report = {
            "holdout": str(options.holdout),
            "holdout_questions": len(questions),
            "threshold_cosine": options.holdout_threshold,
            "dropped": len(dropped),
            "dropped_by_kind": dict(Counter(p.kind for p, _, _ in dropped)),
            "dropped_examples": [
                {"query": p.question, "closest_eval_question": q, "cosine": c}
                for p, q, c in dropped[:10]
            ],
        }
        say(
            f"holdout: {len(dropped)} queries within cosine {options.holdout_threshold} of "
            f"the {len(questions)} questions of {options.holdout} dropped"
        )
    train, validation = split_pairs(pairs, options.validation_share, options.seed)
    available = len(train)
    if options.max_pairs and len(train) > options.max_pairs:
        train = random.Random(options.seed).sample(train, options.max_pairs)
    if len(train) < 2 or not validation:
        raise InvalidInputError(
            f"only {len(train)} training and {len(validation)} validation pairs from "
            f"{len(chunks)} chunks: the index is too small to tune on"
        )
    random.Random(options.seed).shuffle(train)
    counts.update(
        train_available=available,
        train=len(train),
        validation=len(validation),
        train_by_kind=dict(_kinds(train)),
        validation_by_kind=dict(_kinds(validation)),
    )
    timings["pairs_s"] = round(time.perf_counter() - started, 1)
    say(f"pairs: {len(train)} to train (of {available}), {len(validation)} to validate")

    columns: dict[str, list[str]] = {
        "anchor": [p.question for p in train],
        "positive": [p.positive for p in train],
    }
    if options.hard_negatives:
        t0 = time.perf_counter()
        columns["negative"], mined = mine_negatives(runtime, train, chunks, options.seed)
        counts["hard_negatives_mined"] = mined
        timings["mining_s"] = round(time.perf_counter() - t0, 1)
        say(f"hard negatives: {mined} of {len(train)} mined with the index's retrieval")

    # --- base, validation before ------------------------------------------------------------
    import datasets
    from transformers import PrinterCallback
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    model = SentenceTransformer(str(base.path), device="cpu", local_files_only=True)
    # validation reads as serving does (its passages are ~150 tokens); training reads less
    serving_max_tokens = min(model.max_seq_length or base.max_tokens, base.max_tokens)
    model.max_seq_length = serving_max_tokens
    data = validation_set(validation, chunks, options.seed)
    t0 = time.perf_counter()
    base_q, base_d = encode(model, data.queries), encode(model, data.docs)
    base_top = rankings(base_q, base_d)
    metrics: dict[str, Any] = {"validation_base": score_rankings(base_top, data)}
    timings["validation_base_s"] = round(time.perf_counter() - t0, 1)
    say(f"base on validation: {_line(metrics['validation_base'])}")

    # --- training ----------------------------------------------------------------------------
    staging = new_staging(settings.models_dir, "retriever", options.name)
    try:
        model.max_seq_length = options.max_seq_length
        bf16 = _fast_bf16()
        args = SentenceTransformerTrainingArguments(
            output_dir=str(staging / "checkpoints"),
            num_train_epochs=options.epochs,
            per_device_train_batch_size=options.batch_size,
            learning_rate=options.learning_rate,
            warmup_steps=0.1,
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            bf16=bf16,
            use_cpu=not torch.cuda.is_available(),
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            seed=options.seed,
            data_seed=options.seed,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = SentenceTransformerTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_dict(columns),
            loss=MultipleNegativesRankingLoss(model),
        )
        trainer.remove_callback(PrinterCallback)  # it prints every step's dict on stdout
        trainer.add_callback(_progress_callback(say))
        t0 = time.perf_counter()
        trainer.train()
        timings["training_s"] = round(time.perf_counter() - t0, 1)
        losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
        shutil.rmtree(staging / "checkpoints", ignore_errors=True)
        metrics["loss"] = _loss_summary(losses)
        say(
            f"trained {trainer.state.global_step} steps in {timings['training_s']:.0f} s; "
            f"loss {metrics['loss']['first']:.3f} -> {metrics['loss']['last']:.3f}"
        )

        # --- validation after, save, int8 ----------------------------------------------------
        model.eval()
        model.max_seq_length = serving_max_tokens  # what it reads when serving
        t0 = time.perf_counter()
        tuned_q, tuned_d = encode(model, data.queries), encode(model, data.docs)
        tuned_top = rankings(tuned_q, tuned_d)
        metrics["validation_tuned"] = score_rankings(tuned_top, data)
        metrics["validation_changed_top10"] = round(1 - top10_agreement(base_top, tuned_top), 4)
        timings["validation_tuned_s"] = round(time.perf_counter() - t0, 1)
        say(f"tuned on validation: {_line(metrics['validation_tuned'])}")
        model.save(str(staging))
        weights_sha = sha256_file(staging / "model.safetensors")
        model_id = f"tuned:{options.name}@{weights_sha[:12]}"
        dim = int(tuned_d.shape[1])
        serving: dict[str, Any] = {"dim": dim, "max_tokens": serving_max_tokens, "onnx": None}
        warnings: list[str] = []
        if options.onnx:
            try:
                t0 = time.perf_counter()
                export_int8_onnx(model, staging)
                serving["onnx"] = "model.onnx"
                int8_q, int8_d = encode_onnx(
                    staging, model_id + "+int8-onnx", serving_max_tokens, dim, data
                )
                int8_top = rankings(int8_q, int8_d)
                metrics["validation_int8"] = score_rankings(int8_top, data)
                metrics["int8_top10_agreement"] = top10_agreement(int8_top, tuned_top)
                timings["onnx_s"] = round(time.perf_counter() - t0, 1)
                say(
                    f"int8 ONNX: top-10 agreement with the tuned fp32 model "
                    f"{metrics['int8_top10_agreement']:.3f}"
                )
                if metrics["int8_top10_agreement"] < MIN_INT8_AGREEMENT:
                    warnings.append(
                        f"the int8 ONNX copy agrees with the fp32 model on only "
                        f"{metrics['int8_top10_agreement']:.2f} of the top 10"
                    )
            except Exception as exc:  # noqa: BLE001 - the fp32 model is kept without it
                (staging / "model.onnx").unlink(missing_ok=True)
                (staging / "model.fp32.onnx").unlink(missing_ok=True)
                serving["onnx"] = None
                warnings.append(f"no int8 ONNX copy: {exc}")
        before = metrics["validation_base"]["mrr@10"]
        after = metrics["validation_tuned"]["mrr@10"]
        if after <= before:
            warnings.append(
                f"the tuned model is not better than the base on the validation pseudo-queries "
                f"(MRR@10 {after:.3f} against {before:.3f}); keep the base"
            )
        data_files.append(_write_pairs(staging / "train.jsonl", train))
        data_files.append(_write_pairs(staging / "validation.jsonl", validation))
        timings["total_s"] = round(time.perf_counter() - started, 1)
        manifest = Manifest(
            kind="retriever",
            name=options.name,
            base_model=options.base,
            base_model_id=base.model_id,
            base_sha256=base.sha256,
            data=data_files,
            hyperparameters={
                "loss": "MultipleNegativesRankingLoss(scale=20, in-batch + mined negative)"
                if options.hard_negatives
                else "MultipleNegativesRankingLoss(scale=20, in-batch negatives)",
                "kinds": list(options.kinds),
                "epochs": options.epochs,
                "batch_size": options.batch_size,
                "learning_rate": options.learning_rate,
                "warmup_ratio": 0.1,
                "max_pairs": options.max_pairs,
                "max_seq_length_training": options.max_seq_length,
                "hard_negatives": options.hard_negatives,
                "validation_share": options.validation_share,
                "seed": options.seed,
                "bf16_autocast": bf16,
                "batch_sampler": "no_duplicates",
            },
            metrics={
                **metrics,
                "counts": counts,
                "holdout_filter": holdout_report,
                "corpus": corpus_version(runtime),
                "warnings": warnings,
            },
            cost={
                **timings,
                "cpu_s": _cpu_s(),
                "peak_rss_mb": _peak_rss_mb(),
                "torch_threads": torch.get_num_threads(),
                "device": "cuda" if torch.cuda.is_available() else "cpu",
            },
            model_id=model_id,
            serving=serving,
        )
        write_manifest(staging, manifest)
        folder = publish(staging, settings.models_dir, "retriever", options.name,
                         replace=options.replace)  # fmt: skip
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for warning in warnings:
        log.warning("%s", warning)
    return TuneReport(folder, manifest, warnings)


def _progress_callback(say: ProgressFn):
    """A line about every tenth of the steps (a CPU run takes minutes)."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            every = max(state.max_steps // 10, 1)
            if logs and "loss" in logs and state.global_step % every == 0:
                say(f"step {state.global_step}/{state.max_steps}: loss {float(logs['loss']):.3f}")

    return Progress()


def _kinds(pairs: Sequence[TrainingPair]) -> list[tuple[str, int]]:
    return sorted(Counter(p.kind for p in pairs).items())


def _loss_summary(losses: Sequence[float]) -> dict[str, Any]:
    """First and last training loss (means of the first and last tenth of the steps)."""
    if not losses:
        return {"steps": 0, "first": float("nan"), "last": float("nan")}
    tenth = max(len(losses) // 10, 1)
    return {
        "steps": len(losses),
        "first": round(float(np.mean(losses[:tenth])), 4),
        "last": round(float(np.mean(losses[-tenth:])), 4),
        "curve": [round(float(x), 4) for x in losses[:: max(len(losses) // 50, 1)]],
    }


def _line(scores: dict[str, Any]) -> str:
    return (
        f"R@1 {scores['recall@1']:.3f}  R@5 {scores['recall@5']:.3f}  "
        f"R@10 {scores['recall@10']:.3f}  MRR@10 {scores['mrr@10']:.3f}  (n={scores['n']})"
    )
