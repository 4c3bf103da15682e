"""The embedded index at scale: Qdrant Edge (the default) against qdrant-client's embedded mode.

Synthetic collections shaped like ours: ~800-character texts, a tree of source paths with
~10 chunks per file, section titles, 384-d random unit vectors and random sparse vectors
(~60 nonzeros from a 30k vocabulary, Zipf-like). Like the indexer's, a chunk's dense vector
is 1-3 windows (mean 1.7) scored by MaxSim. Each (backend, size) runs in its own
process, so peak RSS is its own. For each it measures:

  - indexing through the indexer's per-file calls (upsert_chunks, delete_source_points with
    keep, put_file), vectors made outside the timed calls: chunks/s;
  - manifest() and delete_orphans() over the whole index (the start and end of a run);
  - hybrid_search (limit 10, prefetch 40, weighted RRF) p50/p95: no filter, a ``dirs``
    filter (one top directory, ~1/40 of the points), a ``section`` word filter;
  - size on disk, reopen time (open + first query) and peak RSS.

    python benchmarks/bench_store_scale.py --sizes 10000,100000 [--out results.json]

qdrant-client's embedded mode is brute force in Python; it runs only up to --client-max
points (default 10000) and is stopped after --client-timeout seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

DIM = 384
VOCAB = 30_000
NNZ = 60
CHUNKS_PER_FILE = 10
TOP_DIRS = 40
WINDOWS_P = [0.45, 0.4, 0.15]  # dense windows per chunk: 1, 2 or 3
WORDS = (
    "dirac job pilot agent site storage element file catalog replica transfer request "
    "proxy certificate voms configuration server service system monitoring accounting "
    "workload management data operation transformation production user group shifter "
    "install setup client command line option parameter default value section example"
).split()


def du(path: Path) -> int:
    """Bytes allocated on disk (edge preallocates sparse WAL and mmap files)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


def zipf_probs(n: int, s: float = 1.07) -> np.ndarray:
    p = 1.0 / np.arange(1, n + 1) ** s
    return p / p.sum()


class Corpus:
    """Deterministic synthetic chunks, made file by file."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.p = zipf_probs(VOCAB)

    def source(self, f: int) -> str:
        return f"top{f % TOP_DIRS}/sub{(f // TOP_DIRS) % 7}/part{(f // 280) % 5}/file{f}.rst"

    def sparse(self, nnz: int) -> tuple[list[int], list[float]]:
        idx = np.unique(self.rng.choice(VOCAB, size=nnz, p=self.p))
        vals = self.rng.uniform(0.3, 2.5, size=len(idx)).round(4)
        return idx.tolist(), vals.tolist()

    def dense(self, n: int) -> np.ndarray:
        v = self.rng.standard_normal((n, DIM)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def file_rows(self, f: int) -> list[tuple]:
        from dirac_docs_mcp.store import ancestor_dirs

        source = self.source(f)
        windows = self.rng.choice([1, 2, 3], size=CHUNKS_PER_FILE, p=WINDOWS_P)
        dense = self.dense(int(windows.sum()))
        starts = np.concatenate([[0], np.cumsum(windows)])
        rows = []
        for pos in range(CHUNKS_PER_FILE):
            words = self.rng.choice(WORDS, size=130)
            text = " ".join(words)[:800]
            section = " ".join(self.rng.choice(WORDS, size=3)).title()
            payload = {
                "text": text,
                "source": source,
                "section": f"{section} > Part {pos}",
                "breadcrumb": [source, section],
                "position": pos,
                "page": None,
                "root": "/bench/docs",
                "dirs": ancestor_dirs(source),
            }
            pid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{source}#{pos}"))
            vectors = dense[starts[pos] : starts[pos + 1]].tolist()
            rows.append((pid, payload, vectors, self.sparse(NNZ)))
        return rows

    def query(self) -> tuple[list[float], tuple[list[int], list[float]]]:
        idx, _ = self.sparse(8)
        return self.dense(1)[0].tolist(), (idx, [1.0] * len(idx))


def open_store(backend: str, path: Path):
    from dirac_docs_mcp.store import EdgeStore

    if backend == "edge":
        return EdgeStore.open_path(path, "bench")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root
    from tests.qdrant_local import open_local

    return open_local(path, "bench")


def percentiles(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 2),
    }


def run_one(backend: str, size: int, queries: int, workdir: Path) -> dict:
    """One backend at one size, in this process."""
    from dirac_docs_mcp.store import FileRecord

    path = workdir / f"{backend}-{size}"
    shutil.rmtree(path, ignore_errors=True)
    corpus = Corpus()
    n_files = size // CHUNKS_PER_FILE
    out: dict = {"backend": backend, "size": n_files * CHUNKS_PER_FILE}

    store = open_store(backend, path)
    store.ensure_collection("bench-model", DIM)
    t_store = 0.0
    for f in range(n_files):
        rows = corpus.file_rows(f)  # not timed
        t0 = time.perf_counter()
        store.upsert_chunks(rows)
        ids = [r[0] for r in rows]
        store.delete_source_points(rows[0][1]["source"], keep=ids)
        store.put_file(FileRecord("/bench/docs", rows[0][1]["source"], f"sha{f}", ids))
        t_store += time.perf_counter() - t0
    t0 = time.perf_counter()
    store.set_roots(["/bench/docs"])
    t_store += time.perf_counter() - t0
    out["index_s"] = round(t_store, 2)
    out["index_chunks_per_s"] = round(out["size"] / t_store, 1)

    t0 = time.perf_counter()
    manifest = store.manifest()
    out["manifest_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    assert store.delete_orphans(manifest.keys()) == 0
    out["delete_orphans_s"] = round(time.perf_counter() - t0, 3)
    assert store.count() == out["size"]

    qs = [corpus.query() for _ in range(queries)]
    filters = {
        "none": {},
        "dirs": {"source_prefix": "top3"},
        "section": {"section": "agent"},
    }
    args = {"limit": 10, "prefetch": 40, "rrf_k": 20, "weights": (1.0, 1.0)}
    for name, flt in filters.items():
        for dense, sparse in qs[:5]:  # warm up
            store.hybrid_search(dense, sparse, **args, **flt)
        ms = []
        for dense, sparse in qs:
            t0 = time.perf_counter()
            hits = store.hybrid_search(dense, sparse, **args, **flt)
            ms.append((time.perf_counter() - t0) * 1000)
        if name == "dirs":
            assert hits and all(h.source.startswith("top3/") for h in hits)
        out[f"query_{name}"] = percentiles(ms)

    store.close()
    out["disk_mb"] = round(du(path) / 2**20, 1)
    t0 = time.perf_counter()
    store = open_store(backend, path)
    out["open_s"] = round(time.perf_counter() - t0, 3)
    store.hybrid_search(*qs[0], **args)
    out["reopen_first_query_s"] = round(time.perf_counter() - t0, 3)
    store.close()
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    shutil.rmtree(path, ignore_errors=True)
    return out


def child(args: argparse.Namespace, backend: str, size: int, workdir: Path) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        backend,
        str(size),
        "--queries",
        str(args.queries),
        "--workdir",
        str(workdir),
    ]
    timeout = args.client_timeout if backend == "client" else None
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        shutil.rmtree(workdir / f"{backend}-{size}", ignore_errors=True)
        return {"backend": backend, "size": size, "error": f"stopped after {timeout:.0f} s"}
    if done.returncode != 0:
        return {"backend": backend, "size": size, "error": done.stderr.strip()[-500:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: list[dict]) -> str:
    cols = [
        ("backend", "backend", "{}"),
        ("size", "chunks", "{}"),
        ("index_chunks_per_s", "index/s", "{:.0f}"),
        ("query_none.p50_ms", "q p50", "{:.1f}"),
        ("query_none.p95_ms", "q p95", "{:.1f}"),
        ("query_dirs.p50_ms", "dirs p50", "{:.1f}"),
        ("query_dirs.p95_ms", "dirs p95", "{:.1f}"),
        ("query_section.p50_ms", "sect p50", "{:.1f}"),
        ("manifest_s", "manifest s", "{:.2f}"),
        ("delete_orphans_s", "orphans s", "{:.2f}"),
        ("disk_mb", "disk MB", "{:.0f}"),
        ("reopen_first_query_s", "reopen s", "{:.2f}"),
        ("peak_rss_mb", "RSS MB", "{:.0f}"),
    ]

    def get(r: dict, key: str):
        for part in key.split("."):
            r = r.get(part, {}) if isinstance(r, dict) else {}
        return r if r != {} else None

    lines = [" | ".join(h for _, h, _ in cols)]
    for r in results:
        if "error" in r:
            lines.append(f"{r['backend']} | {r['size']} | {r['error']}")
            continue
        cells = []
        for key, _, fmt in cols:
            v = get(r, key)
            cells.append("-" if v is None else fmt.format(v))
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated chunk counts")
    ap.add_argument("--backends", default="edge,client", help="edge and/or client")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--client-max", type=int, default=10_000)
    ap.add_argument("--client-timeout", type=float, default=900.0)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--child", nargs=2, metavar=("BACKEND", "SIZE"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        backend, size = args.child[0], int(args.child[1])
        print(json.dumps(run_one(backend, size, args.queries, args.workdir)))
        return

    sizes = [int(s) for s in args.sizes.split(",") if s]
    backends = [b for b in args.backends.split(",") if b]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-store-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for size in sizes:
            for backend in backends:
                if backend == "client" and size > args.client_max:
                    continue
                print(f"{backend} {size} ...", file=sys.stderr, flush=True)
                results.append(child(args, backend, size, workdir))
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(results))
    info = {
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "dim": DIM,
        "vocab": VOCAB,
        "nnz": NNZ,
        "mean_windows": float(np.dot([1, 2, 3], WINDOWS_P)),
        "queries": args.queries,
    }
    if args.out:
        args.out.write_text(json.dumps({"machine": info, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
