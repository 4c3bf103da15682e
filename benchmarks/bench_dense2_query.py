"""Query-encoding cost of the second dense model (EmbeddingGemma), by precision and threads.

Issue 15 asks for EmbeddingGemma's ranking at MiniLM's latency. A search embeds one short
query; the documents were embedded once at index time. So the query side alone may run in
another precision: this script measures, per variant (torch fp32/bf16 as loaded, and dynamic
int8 Linear layers), the query encoding time on the eval questions, alone and interleaved
with what a search also runs (MiniLM ONNX + BM25, as in the server), and checks the ranking
it gives over the index's own EmbeddingGemma document vectors against the reference
precision: top-10 overlap and top-1 agreement (the issue's bar is top-10 agreement ≥ 0.99).

    DIRAC_MCP_DATA_DIR=... DIRAC_MCP_DENSE2_MODEL=embeddinggemma-300m \\
        python benchmarks/bench_dense2_query.py ../shared/eval/dev.jsonl --threads 2 \\
        --out benchmarks/results/dense2_query_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from bench_search import pct  # same folder: run as python benchmarks/bench_dense2_query.py

from dirac_docs_mcp.config import load_settings
from dirac_docs_mcp.embeddings import SentenceTransformerEncoder
from dirac_docs_mcp.evaluation import load_questions
from dirac_docs_mcp.hardware import cpu_has_fast_bf16
from dirac_docs_mcp.models.embedding import resolve_dense2_model
from dirac_docs_mcp.runtime import Runtime
from dirac_docs_mcp.store.base import DENSE2, named_dense


def cpu_description() -> dict:
    """The CPU's name and the flags that decide bf16/int8 speed (AMX, AVX512-BF16, VNNI)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"cpu": platform.processor() or platform.machine()}
    name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if "model name" in ln), "")
    flags = next(
        (ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []
    )
    wanted = ("amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx2")
    return {"cpu": name, "cpu_flags": [f for f in wanted if f in flags]}


def timing(ms: list[float]) -> dict:
    return {"p50_ms": round(statistics.median(ms), 2), "p95_ms": round(pct(ms, 0.95), 2)}


def quantize_int8(encoder: SentenceTransformerEncoder, per_channel: bool = False) -> None:
    """Dynamic int8 for every Linear layer of the query encoder (weights int8 with one scale
    per tensor or per output channel, activations quantized per call); embeddings and norms
    in fp32."""
    import torch
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

    model = encoder._model.float()
    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    torch.ao.quantization.quantize_dynamic(
        model, {torch.nn.Linear: qconfig}, dtype=torch.qint8, inplace=True
    )


def document_matrix(runtime: Runtime) -> np.ndarray:
    vectors = []
    for batch in runtime.store.export_rows():
        for _, _, dense, _ in batch:
            vectors.append(named_dense(dense)[DENSE2])
    return np.asarray(vectors, dtype=np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("questions", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="passes over the questions")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    settings = load_settings()
    if not settings.dense2_model:
        raise SystemExit("set DIRAC_MCP_DENSE2_MODEL to the index's second dense model")
    spec = resolve_dense2_model(settings.dense2_model, settings.models_dir)
    queries = [q["question"] for q in load_questions(args.questions)]
    report: dict = {
        **cpu_description(),
        "native_bf16": cpu_has_fast_bf16(torch),
        "threads": args.threads,
        "queries": len(queries),
        "rounds": args.rounds,
        "variants": {},
    }
    with Runtime(settings) as runtime:
        docs = document_matrix(runtime)
        report["documents"] = int(docs.shape[0])
        enc = runtime.encoders
        enc.dense.embed_query("warm up")
        enc.sparse.embed_query("warm up")
        reference = None
        for name in ("as_loaded", "int8", "int8_per_channel"):
            t0 = time.perf_counter()
            encoder = SentenceTransformerEncoder(spec, threads=args.threads)
            if name.startswith("int8"):
                quantize_int8(encoder, per_channel=name.endswith("per_channel"))
            load_s = time.perf_counter() - t0
            encoder.embed_query("warm up")
            alone, beside, total = [], [], []
            vectors = []
            for round_ in range(args.rounds):
                for q in queries:
                    t0 = time.perf_counter()
                    v = encoder.embed_query(q)
                    alone.append((time.perf_counter() - t0) * 1000)
                    if round_ == 0:
                        vectors.append(v)
                for q in queries:  # what a search runs: MiniLM + BM25 + the second model
                    t0 = time.perf_counter()
                    enc.dense.embed_query(q)
                    enc.sparse.embed_query(q)
                    t1 = time.perf_counter()
                    encoder.embed_query(q)
                    t2 = time.perf_counter()
                    beside.append((t2 - t1) * 1000)
                    total.append((t2 - t0) * 1000)
            q = np.asarray(vectors, dtype=np.float32)
            top = np.argsort(-(q @ docs.T), axis=1)[:, :10]
            variant = {
                "dtype": str(next(encoder._model.parameters()).dtype),
                "load_s": round(load_s, 2),
                "query_alone": timing(alone),
                "query_beside_minilm_bm25": timing(beside),
                "all_three_encoders": timing(total),
            }
            if reference is None:
                reference = (q, top)
            else:
                ref_q, ref_top = reference
                overlap = [len(set(a) & set(b)) / 10 for a, b in zip(top, ref_top, strict=True)]
                variant["top10_overlap_mean"] = round(float(np.mean(overlap)), 4)
                variant["top10_overlap_min"] = round(float(np.min(overlap)), 2)
                variant["top1_agreement"] = round(float(np.mean(top[:, 0] == ref_top[:, 0])), 4)
                variant["cosine_to_reference_min"] = round(
                    float(np.min(np.sum(q * ref_q, axis=1))), 4
                )
            report["variants"][name] = variant
            print(name, json.dumps(variant), flush=True)
            del encoder
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
