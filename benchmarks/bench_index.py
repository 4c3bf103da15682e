"""Indexing throughput against its limit, in one run so the ratio holds on a noisy machine.

Measures, on the same corpus and the same chunk texts:
  1. the full pipeline from scratch (discover, parse, chunk, embed, upsert) into a fresh index;
  2. a no-change re-run;
  3. the raw dense embedding rate of the same model on the same chunk texts (the limit);
and where the pipeline's time goes (parse, chunk, dense, sparse, upsert).

    python benchmarks/bench_index.py ../shared/corpus [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from dirac_docs_mcp.config import load_settings
from dirac_docs_mcp.indexer.chunker import chunk_document, dense_windows
from dirac_docs_mcp.indexer.loaders import load_document
from dirac_docs_mcp.indexer.pipeline import Indexer, discover
from dirac_docs_mcp.runtime import Runtime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--embedding-model", default=None)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            index_path=Path(tmp) / "index", embedding_model=args.embedding_model
        )
        with Runtime(settings) as runtime:
            enc = runtime.encoders
            enc.dense.embed_query("warm up")  # model load is not indexing throughput
            enc.sparse.embed_query("warm up")

            # stage timings on the same inputs
            files = list(discover([args.corpus.resolve()]))
            t0 = time.perf_counter()
            docs = [load_document(f.path, f.source) for f in files]
            t_parse = time.perf_counter() - t0
            t0 = time.perf_counter()
            chunks = [
                c
                for d in docs
                for c in chunk_document(
                    d,
                    enc.count_tokens,
                    max_tokens=settings.chunk_max_tokens,
                    overlap_tokens=settings.chunk_overlap_tokens,
                    min_tokens=settings.chunk_min_tokens,
                )
            ]
            t_chunk = time.perf_counter() - t0
            texts = [c.embed_text for c in chunks]
            counter = enc.count_tokens
            windows = [
                w
                for c in chunks
                for w in dense_windows(
                    c, counter, counter.split, enc.spec.max_tokens, settings.chunk_overlap_tokens
                )
            ]
            t0 = time.perf_counter()
            enc.dense.embed_documents(windows)  # exactly the texts the pipeline embeds
            t_dense = time.perf_counter() - t0
            t0 = time.perf_counter()
            enc.sparse.embed_documents(texts)
            t_sparse = time.perf_counter() - t0

            # the real pipeline, from scratch, then a no-change re-run
            indexer = Indexer(runtime.store, enc, settings)
            t0 = time.perf_counter()
            report = indexer.run([args.corpus], progress=False)
            t_full = time.perf_counter() - t0
            t0 = time.perf_counter()
            rerun = indexer.run([args.corpus], progress=False)
            t_rerun = time.perf_counter() - t0

    n = len(chunks)
    raw_rate = n / t_dense
    pipe_rate = report.chunks_written / t_full
    result = {
        "files": len(files),
        "chunks": n,
        "dense_windows": len(windows),
        "parse_s": round(t_parse, 2),
        "chunk_s": round(t_chunk, 2),
        "dense_embed_s": round(t_dense, 2),
        "sparse_embed_s": round(t_sparse, 2),
        "pipeline_s": round(t_full, 2),
        "upsert_and_other_s": round(t_full - t_parse - t_chunk - t_dense - t_sparse, 2),
        "rerun_no_change_s": round(t_rerun, 2),
        "rerun_unchanged_files": rerun.files_unchanged,
        "raw_dense_chunks_per_s": round(raw_rate, 1),
        "pipeline_chunks_per_s": round(pipe_rate, 1),
        "pipeline_files_per_s": round(report.files_indexed / t_full, 1),
        "ratio_to_raw_embedding": round(pipe_rate / raw_rate, 3),
        "model": enc.spec.model_id,
    }
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:{width}s}  {value}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
