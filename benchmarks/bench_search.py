"""Search latency: in-process and over MCP stdio, against the raw limit (embed + store query).

Uses the questions of an eval file as queries against an existing index (settings from the
environment, e.g. DIRAC_MCP_DATA_DIR, and DIRAC_MCP_DENSE2_MODEL for an index with a second
dense model). Prints p50/p95 ms and writes JSON with --out.

    DIRAC_MCP_DATA_DIR=... python benchmarks/bench_search.py ../shared/eval/dev.jsonl -n 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(ms: list[float]) -> dict:
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(pct(ms, 0.95), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def in_process(queries: list[str]) -> dict:
    from dirac_docs_mcp.config import load_settings
    from dirac_docs_mcp.runtime import Runtime
    from dirac_docs_mcp.tools.search import search_docs

    settings = load_settings()
    with Runtime(settings) as rt:
        search_docs(rt, "warm up", 5)
        enc, store = rt.encoders, rt.store
        raw, embed, full = [], [], []
        for q in queries:
            t0 = time.perf_counter()
            dense = enc.dense.embed_query(q)
            sparse = enc.sparse.embed_query(q)
            dense2 = enc.dense2.embed_query(q) if enc.dense2 is not None else None
            t1 = time.perf_counter()
            store.hybrid_search(
                dense,
                sparse,
                5,
                settings.search_prefetch,
                settings.rrf_k,
                (settings.dense_weight, settings.sparse_weight, settings.dense2_weight),
                dense2=dense2,
            )
            t2 = time.perf_counter()
            search_docs(rt, q, 5)
            t3 = time.perf_counter()
            embed.append((t1 - t0) * 1000)
            raw.append((t2 - t0) * 1000)
            full.append((t3 - t2) * 1000)
    return {
        "embed_query": summary(embed),
        "raw_embed_plus_store": summary(raw),
        "search_docs": summary(full),
    }


async def over_stdio(queries: list[str]) -> dict:
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "dirac_docs_mcp", "serve"], env=dict(os.environ)
    )
    t0 = time.perf_counter()
    async with Client(params, mode="legacy") as client:
        await client.list_tools()
        handshake = (time.perf_counter() - t0) * 1000
        t1 = time.perf_counter()
        await client.call_tool("search_dirac_docs", {"query": "warm up"})
        first = (time.perf_counter() - t1) * 1000
        ms, errors = [], 0
        for q in queries:
            t = time.perf_counter()
            result = await client.call_tool("search_dirac_docs", {"query": q, "limit": 5})
            ms.append((time.perf_counter() - t) * 1000)
            errors += bool(result.is_error)
    return {
        "start_to_tools_list_ms": round(handshake, 1),
        "first_search_ms_model_load": round(first, 1),
        "warm_search": summary(ms),
        "errors": errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("questions", type=Path)
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
    queries = [rows[i % len(rows)]["question"] for i in range(args.n)]
    result = {"in_process": in_process(queries), "stdio": asyncio.run(over_stdio(queries))}
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
