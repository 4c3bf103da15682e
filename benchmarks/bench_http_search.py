"""search_dirac_docs over streamable HTTP on loopback: latency and errors, sequential and concurrent.

Starts the real server (``dirac_docs_mcp.http_app.run_http``) in a subprocess on 127.0.0.1,
warms it up (model load is not request latency), then makes N sequential calls from one
client and N calls from C concurrent clients (one MCP session each), and prints p50/p95 ms,
throughput and the error count. Bounded: it stops starting calls after --max-seconds.

    python benchmarks/bench_http_search.py                     # fixture corpus, indexed here
    python benchmarks/bench_http_search.py --corpus ../shared/corpus
    python benchmarks/bench_http_search.py --index /path/to/index [--data-dir DIR]
    (or DIRAC_MCP_INDEX_PATH / DIRAC_MCP_DATA_DIR in the environment)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.node.http_server import http_server  # noqa: E402

QUERIES = [
    "stalled jobs heartbeat",
    "how many payloads may a pilot run in filling mode",
    "MaxJobsInFillMode",
    "dirac-proxy-init group option",
    "file catalog metadata query",
    "pilot logging service",
    "JobCleaningAgent retention",
    "StalledTimeHours default",
]


def build_index(corpus: Path | None, data_dir: Path, index: Path) -> None:
    from dirac_docs_mcp.config import load_settings
    from dirac_docs_mcp.indexer.pipeline import Indexer
    from dirac_docs_mcp.runtime import Runtime

    if corpus is None:
        from tests.conftest import write_fixture_corpus

        corpus = write_fixture_corpus(index.parent / "corpus")
    settings = load_settings(data_dir=data_dir, index_path=index)
    with Runtime(settings) as runtime:
        report = Indexer(runtime.store, runtime.encoders, settings).run([corpus], progress=False)
    print(f"indexed {corpus}: {report.summary()}", file=sys.stderr)


def summarize(name: str, latencies: list[float], errors: int, wall: float) -> dict:
    ms = sorted(x * 1000 for x in latencies)
    n = len(ms)

    def pct(p: float) -> float:
        return ms[min(n - 1, round(p / 100 * (n - 1)))] if n else float("nan")

    row = {
        "run": name,
        "calls": n + errors,
        "ok": n,
        "errors": errors,
        "p50_ms": round(pct(50), 1),
        "p95_ms": round(pct(95), 1),
        "max_ms": round(ms[-1], 1) if n else None,
        "mean_ms": round(statistics.fmean(ms), 1) if n else None,
        "calls_per_s": round((n + errors) / wall, 1) if wall else None,
        "wall_s": round(wall, 2),
    }
    print(
        f"{name:<14} calls {row['calls']:>5}  errors {errors:>3}  p50 {row['p50_ms']:>7} ms  "
        f"p95 {row['p95_ms']:>7} ms  max {row['max_ms']} ms  {row['calls_per_s']} calls/s"
    )
    return row


async def worker(
    url: str, mode: str, calls: list[int], lat: list[float], err: list[str], deadline: float
) -> None:
    async with Client(url, mode=mode) as client:
        for i in calls:
            if time.monotonic() > deadline:
                return
            start = time.perf_counter()
            try:
                with anyio.fail_after(60):
                    result = await client.call_tool(
                        "search_dirac_docs", {"query": QUERIES[i % len(QUERIES)], "limit": 5}
                    )
                if result.is_error or not result.structured_content["hits"]:
                    err.append(result.content[0].text if result.content else "no hits")
                    continue
            except Exception as exc:  # counted and reported, the run goes on
                err.append(repr(exc))
                continue
            lat.append(time.perf_counter() - start)


async def run(url: str, mode: str, n: int, concurrency: int, max_seconds: float) -> list[dict]:
    lat: list[float] = []
    err: list[str] = []
    await worker(url, mode, list(range(16)), lat, err, time.monotonic() + 120)  # warm-up
    if err:
        raise SystemExit(f"warm-up failed: {err[0]}")
    rows = []
    for name, workers in (("sequential", 1), (f"concurrent x{concurrency}", concurrency)):
        lat, err = [], []
        deadline = time.monotonic() + max_seconds
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for w in range(workers):
                tg.start_soon(worker, url, mode, list(range(w, n, workers)), lat, err, deadline)
        wall = time.perf_counter() - start
        rows.append(summarize(name, lat, len(err), wall))
        if len(lat) + len(err) < n:
            print(f"  stopped after {max_seconds}s: {len(lat) + len(err)} of {n} calls made")
        for message in sorted(set(err))[:3]:
            print(f"  error: {message[:200]}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--corpus", type=Path, help="index this folder first (default: fixture corpus)")
    ap.add_argument("--index", type=Path, default=os.environ.get("DIRAC_MCP_INDEX_PATH"))
    ap.add_argument("--data-dir", type=Path, default=os.environ.get("DIRAC_MCP_DATA_DIR"))
    ap.add_argument("-n", "--calls", type=int, default=1000, help="calls per run (default 1000)")
    ap.add_argument("-c", "--concurrency", type=int, default=8)
    ap.add_argument("--mode", default="auto", help="auto (2026-07-28) or legacy (2025-11-25)")
    ap.add_argument("--max-seconds", type=float, default=300, help="bound per run (default 300)")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        index = args.index
        if index is None or args.corpus is not None:
            index = Path(tmp) / "index"
            build_index(args.corpus, data_dir, index)
        with http_server(data_dir, index) as server:
            print(f"server {server.url} (mode {args.mode}), index {index}; {os.cpu_count()} CPUs")
            rows = anyio.run(
                run, server.url, args.mode, args.calls, args.concurrency, args.max_seconds
            )
    if args.out:
        args.out.write_text(json.dumps({"mode": args.mode, "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
