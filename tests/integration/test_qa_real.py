"""generate_qa_pairs end to end with the smallest generator on PyPI (SmolLM2-135M): real
chunks → xgrammar-constrained micro-batches → gates → JSONL, through the MCP in-memory
client and the CLI (killed mid-run, then resumed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcp import Client

from dirac_docs_mcp.schemas import QAPair
from dirac_docs_mcp.server import build_server

from ..conftest import FIXTURE_FILES

pytestmark = [pytest.mark.slow]

SMALL = {"generator_model": "smollm2-135m", "qa_min_chunk_words": 10}
# every gate open (a 135M model invents most answers; the gates are tested on their own in
# test_qa_dataset / test_qa_gates), so that lines get written
OPEN = {
    "qa_min_grounding": 0.0,
    "qa_max_missing_specifics": 20,
    "qa_min_window_share": 0.0,
    "qa_min_phrase_share": 0.0,
    "qa_min_anchored_share": 0.0,
    "qa_roundtrip_drop": False,
}


def lines_of(path: Path) -> list[dict]:
    text = path.read_text()
    assert text.endswith("\n"), "a torn last line"
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_tool_writes_only_parsed_grounded_pairs(fixture_index, tmp_path, anyio_backend):
    settings, _ = fixture_index
    # SmolLM2-135M mostly invents its answers (0 of 12 pass the default 0.7 grounding: the
    # gate at work, unit-tested in test_qa_gates); the gate is off here so lines get written
    settings = settings.model_copy(update={**SMALL, "qa_output_dir": tmp_path / "qa", **OPEN})
    progress: list[tuple[float, float | None]] = []

    async def on_progress(done, total, message):
        progress.append((done, total))

    async with Client(build_server(settings)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["generate_qa_pairs"].annotations.read_only_hint is False
        escape = await client.call_tool(
            "generate_qa_pairs", {"output": "../../etc/pairs.jsonl", "all_chunks": True}
        )
        nothing = await client.call_tool("generate_qa_pairs", {"output": "x.jsonl"})
        result = await client.call_tool(
            "generate_qa_pairs",
            {"output": "wms/pairs.jsonl", "all_chunks": True, "n_chunks": 6, "pairs_per_chunk": 2},
            progress_callback=on_progress,
        )
        again = await client.call_tool(
            "generate_qa_pairs",
            {"output": "wms/pairs.jsonl", "all_chunks": True, "n_chunks": 6, "pairs_per_chunk": 2},
        )
    assert escape.is_error and "relative to the QA output folder" in escape.content[0].text
    assert nothing.is_error and "choose chunks" in nothing.content[0].text
    assert not result.is_error, result.content[0].text
    report = result.structured_content
    counts = report["counts"]
    assert counts["chunks_processed"] >= 3
    assert counts["written"] >= 1
    # constrained decoding: every output that closed parsed, with exactly the pairs asked
    # for; one that ran out of tokens (a 135M model can loop until the cap on one machine and
    # not on another) was retried once, then counted as failed, never written half
    assert counts["failed"] <= counts["retried"]
    assert counts["generated"] == 2 * (counts["chunks_processed"] - counts["failed"])
    assert counts["written"] == counts["grounded"] - counts["duplicates"]
    out = tmp_path / "qa" / "wms" / "pairs.jsonl"
    assert report["output"] == str(out.resolve())
    rows = lines_of(out) if counts["written"] else []
    assert len(rows) == counts["written"]
    for row in rows:
        pair = QAPair.model_validate(row)
        assert pair.question.endswith("?") and pair.answer
        assert pair.grounding >= settings.qa_min_grounding
        assert pair.source in FIXTURE_FILES
        assert "SmolLM" in pair.model or "smollm" in pair.model
    assert progress and progress[-1][0] == progress[-1][1] == counts["chunks_processed"]
    # the repeat resumes: nothing left to do, nothing duplicated
    assert again.structured_content["counts"]["chunks_skipped_done"] == counts["chunks_selected"]
    if rows:
        assert len(lines_of(out)) == len(rows)
    assert not (tmp_path / "etc").exists()


def test_cli_killed_mid_run_resumes_without_duplicates(fixture_index, tmp_path):
    settings, _ = fixture_index
    out = tmp_path / "pairs.jsonl"
    env = {
        **os.environ,
        "DIRAC_MCP_DATA_DIR": str(settings.data_dir),
        "DIRAC_MCP_GENERATOR_MODEL": "smollm2-135m",
        "DIRAC_MCP_QA_MIN_CHUNK_WORDS": "10",
        "DIRAC_MCP_QA_MIN_GROUNDING": "0",  # keep every parsed pair, so lines appear early
        "DIRAC_MCP_QA_MAX_MISSING_SPECIFICS": "20",
        "DIRAC_MCP_QA_MIN_WINDOW_SHARE": "0",
        "DIRAC_MCP_QA_MIN_PHRASE_SHARE": "0",
        "DIRAC_MCP_QA_MIN_ANCHORED_SHARE": "0",
        "DIRAC_MCP_QA_ROUNDTRIP_DROP": "false",
    }
    command = [
        sys.executable,
        "-m",
        "dirac_docs_mcp",
        "qa",
        "generate",
        "--index",
        str(settings.index_path),
        "-o",
        str(out),
        "--all",
        "-n",
        "8",
        "--batch-size",
        "1",
        "--pairs-per-chunk",
        "1",
        "--no-progress",
        "--json",
    ]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    state_file = out.with_name(out.name + ".state.json")

    def done_chunks() -> list[str]:
        try:
            return json.loads(state_file.read_text())["done_chunks"]
        except (OSError, ValueError, KeyError):
            return []

    # kill once the first batch is recorded done (its pairs, if SmolLM2 wrote any valid
    # one, are in the file by then): the resume mechanics do not depend on what it writes
    while time.monotonic() < deadline and proc.poll() is None:
        if done_chunks():
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be killed: " + str(
        proc.communicate()[1][-2000:]
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = lines_of(out) if out.exists() else []
    done_before = done_chunks()
    assert 1 <= len(done_before) < 8
    assert {r["chunk_id"] for r in before} <= set(done_before)
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads(finished.stdout)
    assert report["counts"]["chunks_skipped_done"] == len(done_before)
    after = lines_of(out) if out.exists() else []
    assert after[: len(before)] == before  # nothing rewritten
    keys = [(r["chunk_id"], r["question"].lower()) for r in after]
    assert len(keys) == len(set(keys))
    assert len({r["id"] for r in after}) == len(after)
    state = json.loads(out.with_name(out.name + ".state.json").read_text())
    assert {r["chunk_id"] for r in after} <= set(state["done_chunks"])
    assert len(state["done_chunks"]) == report["counts"]["chunks_selected"]


def test_cancel_keeps_the_batches_already_written(fixture_index, tmp_path):
    import threading

    from dirac_docs_mcp.runtime import Runtime
    from dirac_docs_mcp.tools.qa_pairs import QASelection, generate_qa_pairs

    settings, _ = fixture_index
    # qa_generator_model picks the Q-A generator independently of the answer generator
    settings = settings.model_copy(
        update={
            "qa_generator_model": "smollm2-135m",
            "qa_min_chunk_words": 10,
            **OPEN,
        }
    )
    out = tmp_path / "pairs.jsonl"
    cancel = threading.Event()

    def progress(done: int, total: int, message: str) -> None:
        if done >= 1:  # cancel once the first batch is written
            cancel.set()

    selection = QASelection(all_chunks=True, n_chunks=5)
    with Runtime(settings) as runtime:
        first = generate_qa_pairs(
            runtime, selection, out, 1, batch_size=1, cancel=cancel, on_progress=progress
        )
        rest = generate_qa_pairs(runtime, selection, out, 1, batch_size=2)
    assert "SmolLM" in first.model
    assert first.cancelled and first.counts.chunks_processed == 1
    assert rest.counts.chunks_skipped_done == 1 and not rest.cancelled
    assert rest.counts.chunks_processed == first.counts.chunks_selected - 1
    chunk_ids = [r["chunk_id"] for r in lines_of(out)]
    assert len(chunk_ids) == len(set(chunk_ids))  # one pair per chunk, none twice


def test_export_is_ready_for_chat_fine_tuning(fixture_index, tmp_path):
    """What TRL's SFTTrainer does with a conversational dataset: load it with datasets and
    render each `messages` list with the model's chat template."""
    datasets = pytest.importorskip("datasets")
    from dirac_docs_mcp.generator import load_generator
    from dirac_docs_mcp.tools.qa_files import export_chat

    settings, _ = fixture_index
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        QAPair(
            id=str(i),
            question=f"What does option {i} of the StalledJobAgent set?",
            answer=f"Option {i} sets how long a job may stay silent.",
            source=f"doc{i % 3}.rst",
            section="StalledJobAgent",
            chunk_id=f"c{i}",
            grounding=1.0,
            model="m",
            created="2026-01-01T00:00:00+00:00",
        )
        for i in range(9)
    ]
    pairs.write_text("".join(r.model_dump_json() + "\n" for r in rows))
    report = export_chat(pairs, tmp_path / "sft", validation_fraction=0.3, seed=0)
    data = datasets.load_dataset(
        "json",
        data_files={"train": report.train, "validation": report.validation},
        cache_dir=str(tmp_path / "cache"),
    )
    tokenizer = load_generator(settings.model_copy(update=SMALL)).tokenizer
    rendered = tokenizer.apply_chat_template(data["train"][0]["messages"], tokenize=False)
    assert "What does option" in rendered and "sets how long" in rendered
    assert data["validation"].num_rows == report.validation_pairs >= 1


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_mcp_cancellation_keeps_the_written_batches(fixture_index, tmp_path, anyio_backend):
    """The client abandons the call after the first progress notification (the SDK then
    sends notifications/cancelled); the server stops after the batch in flight, keeps what
    was written, and a repeat resumes from there."""
    import fcntl

    import anyio

    settings, _ = fixture_index
    settings = settings.model_copy(
        update={
            **SMALL,
            "qa_output_dir": tmp_path / "qa",
            **OPEN,
            "qa_batch_size": 1,
        }
    )
    args = {"output": "c.jsonl", "all_chunks": True, "n_chunks": 6, "pairs_per_chunk": 1}
    out = tmp_path / "qa" / "c.jsonl"
    first_batch = anyio.Event()

    async def on_progress(done, total, message):
        if done >= 1:
            first_batch.set()

    async with Client(build_server(settings)) as client:
        async with anyio.create_task_group() as group:

            async def call() -> None:
                await client.call_tool("generate_qa_pairs", args, progress_callback=on_progress)

            group.start_soon(call)
            with anyio.fail_after(300):
                await first_batch.wait()
            group.cancel_scope.cancel()

        # the abandoned worker finishes its batch in flight, then releases the file
        lock = out.with_name(out.name + ".lock")
        with anyio.fail_after(120):
            while True:
                fd = os.open(lock, os.O_RDWR)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await anyio.sleep(0.2)
                finally:
                    os.close(fd)
        state = json.loads(out.with_name(out.name + ".state.json").read_text())
        done_before = set(state["done_chunks"])
        again = await client.call_tool("generate_qa_pairs", args)
    assert 1 <= len(done_before) < 6  # stopped early, kept the first batch
    counts = again.structured_content["counts"]
    assert counts["chunks_skipped_done"] == len(done_before)
    assert counts["chunks_processed"] == counts["chunks_selected"] - len(done_before)
    # SmolLM2's pairs may all fail the validity checks (its questions echo the kind
    # prompts): then no line is written, and the state file above is the evidence
    chunk_ids = [r["chunk_id"] for r in lines_of(out)] if out.exists() else []
    assert len(chunk_ids) == len(set(chunk_ids))


def test_rows_out_of_tokens_are_retried_then_counted_never_written_half(fixture_index, tmp_path):
    """A budget far too small for five pairs: the JSON of (nearly) every row cannot close,
    each such row is generated once more with a shorter passage and 1.5x the budget, and
    what still does not close is counted as failed; only parsed pairs reach the file."""
    from dirac_docs_mcp.runtime import Runtime
    from dirac_docs_mcp.tools.qa_pairs import QASelection, generate_qa_pairs

    settings, _ = fixture_index
    settings = settings.model_copy(update={**SMALL, "qa_tokens_per_pair": 32, **OPEN})
    out = tmp_path / "tight.jsonl"
    with Runtime(settings) as runtime:
        report = generate_qa_pairs(
            runtime, QASelection(all_chunks=True, n_chunks=3), out, pairs_per_chunk=5
        )
    counts = report.counts
    assert counts.chunks_processed == 3
    assert counts.retried >= 1  # 168 tokens cannot hold five bounded pairs
    assert counts.failed <= counts.retried
    assert counts.generated == 5 * (counts.chunks_processed - counts.failed)
    rows = lines_of(out) if out.exists() and out.read_text() else []
    assert len(rows) == counts.written
    for row in rows:
        QAPair.model_validate(row)


def test_keep_rejected_records_every_verdict_and_the_judge(fixture_index, tmp_path):
    """With qa_keep_rejected every valid pair is written with its gate scores, kind and
    round-trip rank; kept is exactly the conjunction of the gates; a configured judge adds
    its P(supported) to each grounded pair."""
    from dirac_docs_mcp.runtime import Runtime
    from dirac_docs_mcp.tools.qa_kinds import KINDS
    from dirac_docs_mcp.tools.qa_pairs import QASelection, generate_qa_pairs

    settings, _ = fixture_index
    settings = settings.model_copy(
        update={
            **SMALL,
            "qa_keep_rejected": True,
            "qa_min_grounding": 0.0,
            "qa_judge_model": "smollm2-135m",
        }
    )
    out = tmp_path / "all.jsonl"
    with Runtime(settings) as runtime:
        report = generate_qa_pairs(runtime, QASelection(all_chunks=True, n_chunks=3), out)
    rows = [QAPair.model_validate(r) for r in lines_of(out)]
    assert len(rows) == report.counts.written == report.counts.valid - report.counts.duplicates
    for pair in rows:
        assert pair.kind in (*KINDS, "other") and pair.asked_kind in KINDS
        assert pair.window_share is not None and pair.phrase_share is not None
        assert pair.anchored_share is not None
        assert pair.roundtrip_k == 5
        assert pair.p_supported is not None and 0.0 <= pair.p_supported <= 1.0
        gates = (
            not pair.specifics_missing
            and pair.window_share >= settings.qa_min_window_share
            and pair.phrase_share >= settings.qa_min_phrase_share
            and pair.anchored_share >= settings.qa_min_anchored_share
        )
        assert pair.faithful == gates
        assert pair.kept == (gates and pair.roundtrip_rank is not None)
    assert report.counts.written == len(rows)
