"""The index: real stores in tmp_path with small hand-made vectors (no embedding model).

The embedded backend is Qdrant Edge; qdrant-client's embedded mode (kept for tests and
benchmarks only) is the reference the fusion is checked against.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from dirac_docs_mcp.config import Settings
from dirac_docs_mcp.errors import IndexInUseError, ModelMismatchError, StoreError
from dirac_docs_mcp.store import (
    DENSE,
    DENSE2,
    SPARSE,
    EdgeStore,
    FileRecord,
    QdrantClientStore,
    Store,
    StoredChunk,
    ancestor_dirs,
    file_point_id,
    open_store,
)
from dirac_docs_mcp.store.fusion import weighted_rrf
from tests.qdrant_local import open_local

pytestmark = pytest.mark.filterwarnings(
    "ignore:Payload indexes have no effect:UserWarning",
    "ignore:Failed to obtain server version:UserWarning",
)

DIM = 8
MODEL = "test-model"
COLLECTION = "docs"
SOURCES = [
    "admin/install.rst",
    "admin/config/server.rst",
    "user/jobs/submit.md",
    "user/jobs/monitor.md",
    "dev/api.txt",
]
SECTIONS = [
    "Installing DIRAC",
    "Server Configuration",
    "Submitting jobs",
    "Job monitoring and logs",
    "API reference",
]


def unit(rng: random.Random, dim: int = DIM) -> list[float]:
    v = [rng.gauss(0, 1) for _ in range(dim)]
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def sparse(rng: random.Random, vocab: int = 40, nnz: int = 6) -> tuple[list[int], list[float]]:
    idx = sorted(rng.sample(range(vocab), nnz))
    return idx, [round(rng.uniform(0.1, 2.0), 3) for _ in idx]


def chunk_id(source: str, position: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{source}#{position}"))


def make_rows(per_source: int = 8, seed: int = 0) -> list[tuple]:
    rng = random.Random(seed)
    rows = []
    for s, source in enumerate(SOURCES):
        for pos in range(per_source):
            payload = {
                "text": f"chunk {pos} of {source}",
                "source": source,
                "section": SECTIONS[s] if pos % 2 == 0 else f"{SECTIONS[s]} > Part {pos}",
                "breadcrumb": [source, SECTIONS[s]],
                "position": pos,
                "page": None if s != 4 else pos + 1,
                "root": "/docs",
                "dirs": ancestor_dirs(source),
            }
            # one vector, or the windows of a long chunk (MaxSim)
            dense = unit(rng) if pos % 3 == 0 else [unit(rng) for _ in range(1 + pos % 3)]
            rows.append((chunk_id(source, pos), payload, dense, sparse(rng)))
    return rows


def records(rows: list[tuple]) -> list[FileRecord]:
    by_source: dict[str, list[str]] = {}
    for pid, payload, _, _ in rows:
        by_source.setdefault(payload["source"], []).append(pid)
    return [FileRecord("/docs", src, f"sha-{src}", ids) for src, ids in by_source.items()]


def fill(store: Store, rows: list[tuple]) -> None:
    store.ensure_collection(MODEL, DIM)
    store.upsert_chunks(rows)
    for record in records(rows):
        store.put_file(record)
    store.set_roots(["/docs"])


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    return tmp_path / "index"


@pytest.fixture
def edge(index_dir: Path):
    store = EdgeStore.open_path(index_dir, COLLECTION)
    yield store
    store.close()


@pytest.fixture
def filled(edge: EdgeStore) -> EdgeStore:
    fill(edge, make_rows())
    return edge


def search(store: Store, rng: random.Random, **kw) -> list[StoredChunk]:
    args = {"limit": 10, "prefetch": 20, "rrf_k": 20, "weights": (1.0, 1.0)}
    args.update(kw)
    return store.hybrid_search(unit(rng), sparse(rng, nnz=3), **args)


# --- opening ----------------------------------------------------------------------------
def test_open_without_url_is_embedded_edge(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, collection=COLLECTION)
    with open_store(settings) as store:
        assert isinstance(store, EdgeStore)
        assert store.location == str(settings.index_path)
        assert store.collection == COLLECTION
        assert not store.exists()
        assert store.meta() is None
        assert store.manifest() == {}
        assert store.count() == 0
        assert store.all_point_ids() == set()
        assert store.roots() == []


def test_open_with_unreachable_url_is_a_store_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, qdrant_url="http://127.0.0.1:9", qdrant_timeout_s=2)
    with pytest.raises(StoreError, match="cannot reach Qdrant"):
        open_store(settings)


def test_search_without_index_is_a_store_error(edge: EdgeStore) -> None:
    with pytest.raises(StoreError, match="no index"):
        search(edge, random.Random(0))


# --- collections, meta, manifest --------------------------------------------------------
def test_meta_and_model_mismatch(edge: EdgeStore) -> None:
    edge.ensure_collection(MODEL, DIM)
    edge.ensure_collection(MODEL, DIM)  # idempotent
    meta = edge.meta()
    assert meta is not None and meta["model_id"] == MODEL and meta["dim"] == DIM
    with pytest.raises(ModelMismatchError, match="--rebuild"):
        edge.ensure_collection("other-model", DIM)
    with pytest.raises(ModelMismatchError):
        edge.ensure_collection(MODEL, DIM * 2)
    edge.drop()
    assert not edge.exists() and edge.meta() is None
    edge.ensure_collection("other-model", DIM * 2)
    assert edge.meta()["model_id"] == "other-model"


def test_index_of_an_older_layout_is_refused(edge: EdgeStore) -> None:
    edge.ensure_collection(MODEL, DIM)
    edge._write_meta({"kind": "meta", "model_id": MODEL, "dim": DIM, "roots": []})
    with pytest.raises(ModelMismatchError, match="older version.*--rebuild"):
        edge.ensure_collection(MODEL, DIM)


def test_dense_windows_score_as_the_best_window(edge: EdgeStore) -> None:
    edge.ensure_collection(MODEL, 2)

    def row(name, dense):
        payload = {"text": name, "source": f"{name}.rst", "section": "", "position": 0}
        return (chunk_id(name, 0), payload, dense, ([], []))

    edge.upsert_chunks(
        [
            row("one", [0.6, 0.8]),
            row("windows", [[0.0, 1.0], [1.0, 0.0]]),  # its second window is the query
            row("numpy", np.array([[0.8, 0.6]], dtype=np.float32)),
        ]
    )
    hits = edge.hybrid_search([1.0, 0.0], ([], []), 3, 10, 20, (1.0, 1.0))
    assert [h.text for h in hits] == ["windows", "numpy", "one"]


def test_manifest_round_trip(edge: EdgeStore) -> None:
    edge.ensure_collection(MODEL, DIM)
    a = FileRecord("/docs", "a/x.rst", "sha-a", ["1", "2"])
    b = FileRecord("/other", "b.md", "sha-b", [])
    edge.put_file(a)
    edge.put_file(b)
    assert edge.manifest() == {"a/x.rst": a, "b.md": b}
    a2 = FileRecord("/docs", "a/x.rst", "sha-a2", ["3"])
    edge.put_file(a2)  # same source: replaced, not added
    assert edge.manifest() == {"a/x.rst": a2, "b.md": b}
    assert a.point_id == file_point_id("a/x.rst")
    edge.set_roots(["/docs", "/other", "/docs"])
    assert edge.roots() == ["/docs", "/other"]
    assert edge.meta()["model_id"] == MODEL  # set_roots keeps the rest of meta
    assert edge.delete_file(b) == 0
    assert edge.manifest() == {"a/x.rst": a2}


def test_ancestor_dirs() -> None:
    assert ancestor_dirs("a/b/c.rst") == ["a", "a/b", "a/b/c.rst"]
    assert ancestor_dirs("c.rst") == ["c.rst"]


# --- points -----------------------------------------------------------------------------
def test_points_round_trip(filled: EdgeStore) -> None:
    rows = make_rows()
    assert filled.count() == len(rows)
    assert filled.all_point_ids() == {r[0] for r in rows}
    chunks = filled.chunks_of("dev/api.txt")
    assert [c.position for c in chunks] == list(range(8))
    first = chunks[0]
    assert first.id == chunk_id("dev/api.txt", 0)
    assert first.text == "chunk 0 of dev/api.txt"
    assert first.breadcrumb == ["dev/api.txt", "API reference"]
    assert first.page == 1 and first.root == "/docs"
    assert filled.chunks_of("admin/install.rst")[0].page is None
    assert filled.chunks_of("missing.rst") == []


def test_upsert_replaces_same_id(filled: EdgeStore) -> None:
    rows = make_rows()
    pid, payload, dense, sp = rows[0]
    filled.upsert_chunks([(pid, {**payload, "text": "new text"}, dense, sp)])
    assert filled.count() == len(rows)
    assert filled.chunks_of(payload["source"])[0].text == "new text"


def test_deletes(filled: EdgeStore) -> None:
    rows = make_rows()
    source = "user/jobs/submit.md"
    ids = [r[0] for r in rows if r[1]["source"] == source]
    assert filled.delete_points(ids[:2]) == 2
    assert len(filled.chunks_of(source)) == 6
    # keep two, delete the other four strays of that source
    assert filled.delete_source_points(source, keep=ids[2:4]) == 4
    assert [c.id for c in filled.chunks_of(source)] == ids[2:4]
    assert filled.delete_source_points("nothing/here.md") == 0
    record = FileRecord("/docs", source, "sha", ids)
    filled.put_file(record)
    assert filled.delete_file(record) == len(ids)
    assert filled.chunks_of(source) == []
    assert source not in filled.manifest()


def test_delete_orphans(filled: EdgeStore) -> None:
    known = ["admin/install.rst", "dev/api.txt"]
    removed = filled.delete_orphans(known)
    assert removed == 8 * (len(SOURCES) - 2)
    assert {filled.chunks_of(s) != [] for s in known} == {True}
    assert filled.count() == 16
    assert filled.delete_orphans(known) == 0
    assert filled.delete_orphans([]) == 16  # no manifest: every point is an orphan
    assert filled.count() == 0


# --- search -----------------------------------------------------------------------------
def rrf_by_hand(lists: list[list[str]], k: int, weights: list[float]) -> dict[str, float]:
    """Qdrant's weighted RRF: 0-based rank r in a list of weight w adds 1/(k + (r+1)/w - 1)."""
    scores: dict[str, float] = {}
    for ranked, w in zip(lists, weights, strict=True):
        for r, pid in enumerate(ranked):
            add = 0.0 if w <= 0 else 1.0 / (k + (r + 1) / w - 1)  # a zero weight: nothing
            scores[pid] = scores.get(pid, 0.0) + add
    return scores


def test_weighted_rrf() -> None:
    fused = weighted_rrf([["a", "b", "c"], ["c", "d"]], 20, [1.0, 1.0])
    assert [p for p, _ in fused] == ["c", "a", "b", "d"]  # b and d tie: first seen first
    assert dict(fused) == pytest.approx(rrf_by_hand([["a", "b", "c"], ["c", "d"]], 20, [1, 1]))
    assert dict(fused)["a"] == pytest.approx(1 / 20)
    # weight 2 halves the rank penalty; weight 0 contributes nothing
    assert dict(weighted_rrf([["a"], ["b", "a"]], 10, [0.0, 2.0])) == pytest.approx(
        {"a": 1 / 10, "b": 1 / 9.5}
    )
    assert weighted_rrf([], 20, []) == []


def test_hybrid_fusion_by_hand(edge: EdgeStore) -> None:
    """Three points; dense prefers a > b > c, the sparse query matches c (best) and b."""
    edge.ensure_collection(MODEL, 2)

    def row(name, vec, sp):
        payload = {"text": name, "source": f"{name}.rst", "section": name, "position": 0}
        payload["dirs"] = [f"{name}.rst"]
        return (chunk_id(name, 0), payload, vec, sp)

    edge.upsert_chunks(
        [
            row("a", [1.0, 0.0], ([1], [1.0])),
            row("b", [0.8, 0.6], ([2], [1.0])),
            row("c", [0.0, 1.0], ([2, 3], [1.0, 3.0])),
        ]
    )
    ids = {n: chunk_id(n, 0) for n in "abc"}
    for k, weights in [(20, (1.0, 1.0)), (2, (1.0, 3.0)), (60, (2.0, 0.5))]:
        hits = edge.hybrid_search([1.0, 0.0], ([2, 3], [1.0, 1.0]), 3, 10, k, weights)
        expected = rrf_by_hand(
            [[ids["a"], ids["b"], ids["c"]], [ids["c"], ids["b"]]], k, list(weights)
        )
        got = {h.id: h.score for h in hits}
        assert got.keys() == expected.keys()
        for pid, score in expected.items():
            assert got[pid] == pytest.approx(score, rel=1e-5)
        assert [h.id for h in hits] == sorted(expected, key=lambda p: -expected[p])
    # no sparse terms: dense ranking alone
    hits = edge.hybrid_search([1.0, 0.0], ([], []), 3, 10, 20, (1.0, 1.0))
    assert [h.text for h in hits] == ["a", "b", "c"]
    assert hits[0].score == pytest.approx(1 / 20)


def test_filters(filled: EdgeStore) -> None:
    rng = random.Random(1)
    hits = search(filled, rng, limit=40, prefetch=40, source_prefix="user/jobs")
    assert hits and {h.source for h in hits} == {"user/jobs/submit.md", "user/jobs/monitor.md"}
    hits = search(filled, rng, limit=40, prefetch=40, source_prefix="admin/install.rst")
    assert {h.source for h in hits} == {"admin/install.rst"}
    assert search(filled, rng, source_prefix="admin/ins") == []  # whole path components
    # section: every word of the query, lowercased, as a whole word
    hits = search(filled, rng, limit=40, prefetch=40, section="job")
    assert {h.section for h in hits} == {"Job monitoring and logs"} | {
        f"Job monitoring and logs > Part {p}" for p in (1, 3, 5, 7)
    }
    hits = search(filled, rng, limit=40, prefetch=40, section="CONFIGURATION server")
    assert hits and all(h.source == "admin/config/server.rst" for h in hits)
    hits = search(filled, rng, limit=40, prefetch=40, section="part 3")
    assert len(hits) == len(SOURCES)
    assert search(filled, rng, section="configur") == []
    hits = search(filled, rng, limit=40, prefetch=40, source_prefix="user", section="logs")
    assert {h.source for h in hits} == {"user/jobs/monitor.md"}


@pytest.fixture
def client_store(tmp_path: Path):
    store = open_local(tmp_path / "client-index", COLLECTION)
    yield store
    store.close()


def _fields(c: StoredChunk) -> tuple:
    return (c.id, c.text, c.source, c.section, c.breadcrumb, c.position, c.page, c.root)


def test_same_ranking_as_qdrant_client(filled: EdgeStore, client_store: QdrantClientStore) -> None:
    fill(client_store, make_rows())
    assert client_store.count() == filled.count()
    assert client_store.manifest() == filled.manifest()
    rng_a, rng_b = random.Random(7), random.Random(7)
    cases = [
        {},
        {"rrf_k": 2, "weights": (1.0, 0.5)},
        {"rrf_k": 60, "weights": (0.3, 1.7)},
        {"prefetch": 5, "limit": 5},
        {"source_prefix": "user"},
        {"section": "jobs"},
    ]
    for case in cases * 5:
        a = search(filled, rng_a, **case)
        b = search(client_store, rng_b, **case)
        assert [h.id for h in a] == [h.id for h in b], case
        assert [h.score for h in a] == pytest.approx([h.score for h in b], rel=1e-5)
        assert [_fields(h) for h in a] == [_fields(h) for h in b]


# --- lifecycle --------------------------------------------------------------------------
def test_reopen_keeps_data(index_dir: Path) -> None:
    rows = make_rows()
    with EdgeStore.open_path(index_dir, COLLECTION) as store:
        fill(store, rows)
        before = search(store, random.Random(3))
        manifest = store.manifest()
    with EdgeStore.open_path(index_dir, COLLECTION) as store:
        assert store.exists()
        assert store.count() == len(rows)
        assert store.manifest() == manifest
        assert store.roots() == ["/docs"]
        store.ensure_collection(MODEL, DIM)  # same model: nothing to do
        assert search(store, random.Random(3)) == before


def test_close_twice_is_harmless(edge: EdgeStore) -> None:
    edge.ensure_collection(MODEL, DIM)
    edge.close()
    edge.close()


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_second_opener_gets_index_in_use(filled: EdgeStore, index_dir: Path) -> None:
    # another process
    out = _run_python(
        f"""
        from dirac_docs_mcp.config import Settings
        from dirac_docs_mcp.errors import IndexInUseError
        from dirac_docs_mcp.store import open_store
        try:
            open_store(Settings(index_path={str(index_dir)!r}, collection={COLLECTION!r}))
        except IndexInUseError as exc:
            print("IN USE:", exc)
        else:
            print("OPENED")
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("IN USE:")
    assert "DIRAC_MCP_QDRANT_URL" in out.stdout and "Stop that process" in out.stdout
    # the same process, another handle
    with pytest.raises(IndexInUseError):
        EdgeStore.open_path(index_dir, "another_collection")
    filled.close()
    with EdgeStore.open_path(index_dir, COLLECTION) as again:
        assert again.count() == len(make_rows())


def test_killed_writer_leaves_a_usable_index(index_dir: Path) -> None:
    """A process killed after writing (no flush, no close) loses nothing it wrote."""
    out = _run_python(
        f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_store import COLLECTION, fill, make_rows
        from dirac_docs_mcp.store import EdgeStore
        store = EdgeStore.open_path({str(index_dir)!r}, COLLECTION)
        rows = make_rows()
        fill(store, rows[:20])
        store.upsert_chunks(rows[20:])
        print("written", flush=True)
        os._exit(0)
        """
    )
    assert out.stdout.strip() == "written", out.stderr
    with EdgeStore.open_path(index_dir, COLLECTION) as store:  # the lock died with it
        assert store.count() == len(make_rows())
        assert set(store.manifest()) == {r[1]["source"] for r in make_rows()[:20]}
        assert store.meta()["model_id"] == MODEL
        assert len(search(store, random.Random(0))) == 10


def test_threads_read_while_writing(filled: EdgeStore) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()
    extra = make_rows(per_source=30, seed=5)
    extra = [(str(uuid.uuid4()), *r[1:]) for r in extra]

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            try:
                assert search(filled, rng)
                filled.count()
                filled.manifest()
            except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
                errors.append(exc)
                return

    def writer(part: list[tuple]) -> None:
        try:
            for i in range(0, len(part), 10):
                filled.upsert_chunks(part[i : i + 10])
                filled.delete_points([part[i][0]])
                filled.put_file(FileRecord("/docs", f"t/{part[i][0]}", "x", []))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    readers = [threading.Thread(target=reader, args=(s,)) for s in range(3)]
    writers = [threading.Thread(target=writer, args=(extra[i::2],)) for i in range(2)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert not errors, errors
    deleted = sum(math.ceil(len(extra[i::2]) / 10) for i in range(2))
    assert filled.count() == len(make_rows()) + len(extra) - deleted


# --- damaged, half-made and old indexes -----------------------------------------------
def test_half_created_index_is_started_over(index_dir: Path) -> None:
    import shutil

    with EdgeStore.open_path(index_dir, COLLECTION) as store:
        fill(store, make_rows())
    shutil.rmtree(index_dir / COLLECTION / "files")  # points without a manifest
    with EdgeStore.open_path(index_dir, COLLECTION) as store:
        assert store.meta() is None
        store.ensure_collection(MODEL, DIM)
        assert store.count() == 0 and store.manifest() == {}
        assert store.meta()["model_id"] == MODEL


def test_damaged_index_asks_for_a_rebuild(index_dir: Path) -> None:
    with EdgeStore.open_path(index_dir, COLLECTION) as store:
        fill(store, make_rows())
    (index_dir / COLLECTION / "chunks" / "edge_config.json").write_text("{not json")
    with EdgeStore.open_path(index_dir, COLLECTION) as store:
        for call in (store.exists, store.count, store.manifest, store.meta):
            with pytest.raises(StoreError, match="--rebuild"):
                call()
        with pytest.raises(StoreError, match="--rebuild"):
            store.ensure_collection(MODEL, DIM)
        store.drop()  # what --rebuild does first
        fill(store, make_rows())
        assert store.count() == len(make_rows())


def test_old_qdrant_client_index_is_replaced(index_dir: Path) -> None:
    old = open_local(index_dir, COLLECTION)
    fill(old, make_rows())
    old.close()
    assert (index_dir / "meta.json").is_file()
    with EdgeStore.open_path(index_dir, COLLECTION) as store:
        with pytest.raises(StoreError, match="older version.*--rebuild"):
            store.exists()
        store.ensure_collection(MODEL, DIM)  # what 'index' does: replace it
        assert store.exists() and store.count() == 0
        assert not (index_dir / "collection").exists()
        assert not (index_dir / "meta.json").exists()
    # other collections of the old index are left alone
    old = open_local(index_dir, "other")
    fill(old, make_rows())
    old.close()
    with EdgeStore.open_path(index_dir, COLLECTION) as store:
        store.drop()
        assert (index_dir / "collection" / "other").is_dir()
        assert json.loads((index_dir / "meta.json").read_text())["collections"]


def test_names_exported() -> None:
    assert (DENSE, SPARSE) == ("dense", "bm25")


# --- a second dense model ----------------------------------------------------------------
DENSE2_MODEL = ("second-model", 3)


def rows_with_dense2(rows: list[tuple], seed: int = 3) -> list[tuple]:
    """The same rows, each with a whole-chunk vector of the second model."""
    rng = random.Random(seed)
    return [
        (pid, payload, {DENSE: dense, DENSE2: unit(rng, DENSE2_MODEL[1])}, sp)
        for pid, payload, dense, sp in rows
    ]


def test_dense2_meta_and_mismatches(edge: EdgeStore) -> None:
    edge.ensure_collection(MODEL, DIM, DENSE2_MODEL)
    edge.ensure_collection(MODEL, DIM, DENSE2_MODEL)  # idempotent
    assert (edge.meta()["dense2_model_id"], edge.meta()["dense2_dim"]) == DENSE2_MODEL
    for other in (None, ("other-second", 3), ("second-model", 4)):
        with pytest.raises(ModelMismatchError, match="second dense model") as err:
            edge.ensure_collection(MODEL, DIM, other)
        assert "--rebuild" in str(err.value)
    with pytest.raises(ModelMismatchError, match="embedding model 'test-model'"):
        edge.ensure_collection("other-model", DIM, DENSE2_MODEL)


def test_index_without_dense2_refuses_one(filled: EdgeStore) -> None:
    with pytest.raises(ModelMismatchError, match="second dense model none, not 'second-model'"):
        filled.ensure_collection(MODEL, DIM, DENSE2_MODEL)


def test_search_time_model_check() -> None:
    from dirac_docs_mcp.store import check_model_ids

    meta = {"model_id": MODEL, "dense2_model_id": "second-model"}
    check_model_ids("here", meta, MODEL, "second-model")  # the same models: fine
    with pytest.raises(ModelMismatchError, match="built with embedding model 'test-model'"):
        check_model_ids("here", meta, "other", "second-model")
    with pytest.raises(ModelMismatchError, match="'second-model', but 'none' is configured"):
        check_model_ids("here", meta, MODEL, None)
    with pytest.raises(ModelMismatchError, match="'none', but 'second-model' is configured"):
        check_model_ids("here", {"model_id": MODEL}, MODEL, "second-model")
    # a built-in second model is named by the setting that selects it
    with pytest.raises(ModelMismatchError, match="Set DIRAC_MCP_DENSE2_MODEL=gemma-x to search"):
        check_model_ids("here", meta, MODEL, None, {"second-model": "gemma-x"})


def add_points_with_dense2(store: Store, points: dict[str, tuple]) -> None:
    """One chunk per name: (dense vector, second-model vector, sparse) in a 2-d collection."""
    store.ensure_collection(MODEL, 2, ("second-model", 2))
    rows = []
    for name, (vec, vec2, sp) in points.items():
        payload = {"text": name, "source": f"{name}.rst", "section": name, "position": 0}
        payload["dirs"] = [f"{name}.rst"]
        rows.append((chunk_id(name, 0), payload, {DENSE: vec, DENSE2: vec2}, sp))
    store.upsert_chunks(rows)


def test_dense2_is_a_third_fused_list(edge: EdgeStore) -> None:
    """dense prefers a > b > c, BM25 matches c, the second model prefers b > c > a: each
    weight moves the fused order exactly as Qdrant's weighted RRF says."""
    add_points_with_dense2(
        edge,
        {
            "a": ([1.0, 0.0], [0.0, 1.0], ([1], [1.0])),
            "b": ([0.8, 0.6], [1.0, 0.0], ([4], [1.0])),
            "c": ([0.0, 1.0], [0.8, 0.6], ([2, 3], [1.0, 3.0])),
        },
    )
    ids = {n: chunk_id(n, 0) for n in "abc"}
    lists = [[ids["a"], ids["b"], ids["c"]], [ids["c"]], [ids["b"], ids["c"], ids["a"]]]
    for k, weights in [(10, (0.5, 1.0, 1.5)), (10, (1.0, 1.0, 0.0)), (2, (0.0, 0.0, 1.0))]:
        hits = edge.hybrid_search(
            [1.0, 0.0], ([2, 3], [1.0, 1.0]), 3, 10, k, weights, dense2=[1.0, 0.0]
        )
        expected = rrf_by_hand(lists, k, list(weights))
        assert [h.id for h in hits] == sorted(expected, key=lambda p: -expected[p]), weights
        for h in hits:
            assert h.score == pytest.approx(expected[h.id], rel=1e-5)
    # the second model alone
    hits = edge.hybrid_search([1.0, 0.0], ([], []), 3, 10, 10, (0.0, 1.0, 1.0), dense2=[1.0, 0.0])
    assert [h.text for h in hits] == ["b", "c", "a"]


def test_dense2_same_ranking_as_qdrant_client_and_copied(
    edge: EdgeStore, client_store: QdrantClientStore
) -> None:
    """The server backend fuses the three lists the same way, and copy_index (migrate)
    carries the second model's vectors and meta."""
    from dirac_docs_mcp.store import copy_index

    rows = rows_with_dense2(make_rows())
    edge.ensure_collection(MODEL, DIM, DENSE2_MODEL)
    edge.upsert_chunks(rows)
    for record in records(rows):
        edge.put_file(record)
    edge.set_roots(["/docs"])
    assert copy_index(edge, client_store) == len(rows)
    assert (client_store.meta()["dense2_model_id"], client_store.meta()["dense2_dim"]) == (
        DENSE2_MODEL
    )
    rng = random.Random(11)
    for weights in [(0.5, 1.0, 1.5), (0.0, 0.0, 1.0), (1.0, 1.0, 0.0)] * 4:
        query = (unit(rng), sparse(rng, nnz=3))
        q2 = unit(rng, DENSE2_MODEL[1])
        args = {"limit": 10, "prefetch": 20, "rrf_k": 10, "weights": weights, "dense2": q2}
        a = edge.hybrid_search(*query, **args)
        b = client_store.hybrid_search(*query, **args)
        assert [h.id for h in a] == [h.id for h in b], weights
        assert [h.score for h in a] == pytest.approx([h.score for h in b], rel=1e-5)
    exported = [r for batch in client_store.export_rows() for r in batch]
    by_id = {pid: dense for pid, _, dense, _ in rows}
    for pid, _, dense, _ in exported:
        assert dense[DENSE2] == pytest.approx(by_id[pid][DENSE2], abs=1e-6)


# --- score fusion --------------------------------------------------------------------------
def test_minmax_fusion_by_hand() -> None:
    from dirac_docs_mcp.store.fusion import minmax_fusion

    dense = [("a", 0.9), ("b", 0.5), ("c", 0.4)]  # a: 1, b: 0.2, c: 0
    sparse = [("c", 12.0), ("d", 2.0)]  # c: 1, d: 0
    fused = minmax_fusion([dense, sparse], [1.0, 0.5])
    assert [p for p, _ in fused] == ["a", "c", "b", "d"]
    assert dict(fused) == pytest.approx({"a": 1.0, "b": 0.2, "c": 0.5, "d": 0.0})
    # a margin matters: the same ranks with a close second give another order than RRF
    close = minmax_fusion([[("a", 0.9), ("b", 0.89), ("c", 0.1)], [("b", 3.0), ("a", 1.0)]],
                          [1.0, 1.0])  # fmt: skip
    assert [p for p, _ in close] == ["b", "a", "c"]
    # one candidate or equal scores: each gets the full weight; empty lists add nothing
    assert minmax_fusion([[("a", 0.3)], [], [("a", 2.0), ("b", 2.0)]], [2.0, 1.0, 0.5]) == [
        ("a", 2.5),
        ("b", 0.5),
    ]
    assert minmax_fusion([[("a", 1.0), ("b", 0.0)]], [0.0]) == [("a", 0.0), ("b", 0.0)]


def test_minmax_fusion_in_the_store(edge: EdgeStore) -> None:
    """Dense is sure of a (cosine 1 vs 0.8 and 0), the second model barely prefers b: score
    fusion keeps a first where rank fusion of three lists would not."""
    add_points_with_dense2(
        edge,
        {
            "a": ([1.0, 0.0], [0.99, 0.141], ([1], [1.0])),
            "b": ([0.0, 1.0], [1.0, 0.0], ([2], [1.0])),
            "c": ([-1.0, 0.0], [0.0, 1.0], ([3], [1.0])),
        },
    )
    args = ([1.0, 0.0], ([], []), 3, 10, 10, (1.0, 1.0, 1.0))
    by_score = edge.hybrid_search(*args, dense2=[1.0, 0.0], fusion="minmax")
    by_rank = edge.hybrid_search(*args, dense2=[1.0, 0.0], fusion="rrf")
    assert [h.text for h in by_score] == ["a", "b", "c"]
    assert by_score[0].score == pytest.approx(1.0 + (0.99 - 0.0) / (1.0 - 0.0), abs=1e-3)
    assert {h.text for h in by_rank[:2]} == {"a", "b"}
    assert by_rank[0].score == pytest.approx(by_rank[1].score)  # a tie that ranks cannot break


def test_minmax_same_ranking_as_qdrant_client(
    edge: EdgeStore, client_store: QdrantClientStore
) -> None:
    rows = rows_with_dense2(make_rows())
    for store in (edge, client_store):
        store.ensure_collection(MODEL, DIM, DENSE2_MODEL)
        store.upsert_chunks(rows)
    rng = random.Random(5)
    for weights in [(0.5, 1.0, 1.5), (1.0, 0.0, 1.0), (0.0, 1.0, 0.0)] * 4:
        query = (unit(rng), sparse(rng, nnz=3))
        args = {"limit": 10, "prefetch": 15, "rrf_k": 5, "weights": weights, "fusion": "minmax"}
        args["dense2"] = unit(rng, DENSE2_MODEL[1])
        a = edge.hybrid_search(*query, **args)
        b = client_store.hybrid_search(*query, **args)
        assert [h.id for h in a] == [h.id for h in b], weights
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-6)
    hits = edge.hybrid_search(*query, **{**args, "source_prefix": "user/jobs"})
    assert hits and {h.source for h in hits} <= {"user/jobs/submit.md", "user/jobs/monitor.md"}
