"""What a query-log line costs: 10,000 appends from one process, then 10,000 from 4
processes at once (flock contention, rotation at 1 MB).

    PYTHONPATH=src python benchmarks/bench_query_log.py [FOLDER]
"""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

from dirac_docs_mcp.query_log import QueryLog
from dirac_docs_mcp.schemas import SearchHit

SOURCE = "DIRAC/docs/source/AdministratorGuide/Systems/WorkloadManagement/doc{}.rst"
HITS = [
    SearchHit(
        rank=i + 1,
        text="",
        source=SOURCE.format(i),
        section="",
        score=0.0,
        chunk_id=f"{i:08d}-6e50-5c0c-ac15-758e6fa51c34",
        link="",
    )
    for i in range(5)
]


def write(path: str, n: int, max_bytes: int, start) -> None:
    log = QueryLog(Path(path), max_bytes, 1)
    start.wait()
    for i in range(n):
        question = f"how does the StalledJobAgent decide a job is stalled {i}"
        if not log.record("search_dirac_docs", question, HITS, None):
            raise SystemExit(1)


def main() -> None:
    base = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="qlog-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    for old in base.glob("q*.jsonl*"):
        old.unlink()
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    ready.set()
    started = time.perf_counter()
    write(str(base / "q1.jsonl"), 10_000, 10_000_000, ready)
    single = time.perf_counter() - started
    size = (base / "q1.jsonl").stat().st_size / 10_000
    print(
        f"1 process: 10000 lines in {single:.2f} s = {single * 100:.0f} us/line, {size:.0f} B/line"
    )

    start = ctx.Event()
    path = str(base / "q4.jsonl")
    procs = [ctx.Process(target=write, args=(path, 2_500, 1_000_000, start)) for _ in range(4)]
    for p in procs:
        p.start()
    time.sleep(2)  # let the interpreters start
    started = time.perf_counter()
    start.set()
    for p in procs:
        p.join()
    four = time.perf_counter() - started
    files = sorted(base.glob("q4.jsonl*"))
    kept = sum(len(f.read_text().splitlines()) for f in files)
    sizes = ", ".join(f"{f.name} {f.stat().st_size} B" for f in files)
    print(
        f"4 processes: 10000 lines in {four:.2f} s = {four * 100:.0f} us/line; "
        f"rotation at 1 MB kept the newest {kept} lines ({sizes})"
    )


if __name__ == "__main__":
    main()
