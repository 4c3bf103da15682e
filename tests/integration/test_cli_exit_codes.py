"""What the README promises for the CLI: each command runs from a subprocess, and every
error is one line on stderr with its documented exit code (2 input/config, 3 model, 4 index,
5 not found, 6 output), never a traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest


def _env(settings=None, **extra: str) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join(sys.path))
    for key in list(env):
        if key.startswith("DIRAC_MCP_"):
            del env[key]
    if settings is not None:
        env["DIRAC_MCP_DATA_DIR"] = str(settings.data_dir)
        env["DIRAC_MCP_INDEX_PATH"] = str(settings.index_path)
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], stdout=subprocess.PIPE, timeout: float = 120):
    return subprocess.run(
        [sys.executable, "-m", "dirac_docs_mcp", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(result, code: int, *words: str) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    for word in words:
        assert word in lines[0], lines
    assert result.returncode == code, (result.returncode, result.stderr)
    return lines[0]


# --- every command works from a subprocess ------------------------------------------------


def test_search(fixture_index):
    settings, _ = fixture_index
    result = run_cli("search", "stalled jobs heartbeat", "-n", "1", "--json", env=_env(settings))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["hits"][0]["source"] == "guide/wms/agents.rst"
    assert "Traceback" not in result.stderr


def test_status(fixture_index):
    settings, _ = fixture_index
    result = run_cli("status", "--json", env=_env(settings))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["files"] >= 5


def test_eval(fixture_index, tmp_path):
    settings, _ = fixture_index
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps(
            {
                "id": "q1",
                "question": "when is a job declared stalled",
                "source": "guide/wms/agents.rst",
                "keyphrases": ["stalled"],
            }
        )
        + "\n"
    )
    result = run_cli("eval", str(questions), "-k", "5", env=_env(settings))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_qa_export(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {
            "question": f"What does option number {i} of the agent do?",
            "answer": f"It sets behaviour {i} of the agent.",
            "source": f"doc{i % 3}.rst",
            "section": "S",
            "chunk_id": f"c{i}",
            "id": f"p{i}",
            "grounding": 0.9,
            "model": "test",
            "created": "2026-01-01T00:00:00Z",
        }
        for i in range(6)
    ]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run_cli("qa", "export", str(pairs), "-o", str(tmp_path / "sft"), env=_env())
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "sft" / "train.jsonl").exists()


def test_migrate_refuses_a_server_source_and_a_bad_target(fixture_index):
    settings, _ = fixture_index
    result = run_cli("migrate", "--to-url", "not a url", env=_env(settings))
    assert_one_line_error(result, 2, "--to-url")
    result = run_cli(
        "migrate",
        "--qdrant-url",
        "http://127.0.0.1:9",
        "--to-url",
        "http://127.0.0.1:9",
        env=_env(settings),
    )
    assert_one_line_error(result, 2, "embedded index")


def test_ask_with_a_missing_model_is_a_model_error(fixture_index, tmp_path):
    settings, _ = fixture_index
    env = _env(settings, DIRAC_MCP_GENERATOR_MODEL=str(tmp_path / "no-such-model"))
    result = run_cli("ask", "when is a job declared stalled", env=env)
    assert_one_line_error(result, 3)


# --- exit code 2: bad input or configuration ----------------------------------------------


def test_usage_error_is_one_line(tmp_path):
    assert_one_line_error(run_cli("search", env=_env()), 2, "query")


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_bad_port(port):
    assert_one_line_error(run_cli("serve", "--http", "--port", port, env=_env()), 2, "port")


def test_port_in_use(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = _env(DIRAC_MCP_DATA_DIR=str(tmp_path))
        result = run_cli("serve", "--http", "--port", str(port), env=env, timeout=60)
    assert_one_line_error(result, 2, str(port))


def test_invalid_toml_config(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("x = [\n")
    result = run_cli("status", env=_env(DIRAC_MCP_CONFIG_FILE=str(config)))
    assert_one_line_error(result, 2, "TOML")


def test_named_config_file_missing(tmp_path):
    result = run_cli("status", env=_env(DIRAC_MCP_CONFIG_FILE=str(tmp_path / "nope.toml")))
    assert_one_line_error(result, 2, "nope.toml")


def test_malformed_allowed_origins(tmp_path):
    env = _env(DIRAC_MCP_DATA_DIR=str(tmp_path), DIRAC_MCP_HTTP_ALLOWED_ORIGINS="[oops")
    assert_one_line_error(run_cli("status", env=env), 2, "http_allowed_origins")


@pytest.mark.parametrize("url", ["localhost:6333", "http://:6333", "http://host:99999"])
def test_malformed_qdrant_url(url, tmp_path):
    env = _env(DIRAC_MCP_DATA_DIR=str(tmp_path))
    assert_one_line_error(run_cli("status", "--qdrant-url", url, env=env), 2, "qdrant_url")


def test_query_not_utf8(tmp_path):
    env = _env(DIRAC_MCP_DATA_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable.encode(), b"-m", b"dirac_docs_mcp", b"search", b"\xff"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_line_error(result, 2, "UTF-8")


def test_index_refuses_a_device_and_an_unsupported_file(tmp_path):
    env = _env(DIRAC_MCP_DATA_DIR=str(tmp_path), DIRAC_MCP_INDEX_PATH=str(tmp_path / "index"))
    assert_one_line_error(run_cli("index", os.devnull, env=env), 2, os.devnull)
    other = tmp_path / "passwd"
    other.write_text("root:x:0:0:root:/root:/bin/bash\n")
    assert_one_line_error(run_cli("index", str(other), env=env), 2, "unsupported")
    assert not (tmp_path / "index").exists()  # nothing opened, no root added


def test_bearer_token_too_short(tmp_path):
    env = _env(DIRAC_MCP_DATA_DIR=str(tmp_path), DIRAC_MCP_HTTP_BEARER_TOKEN="   short   ")
    result = run_cli("serve", "--http", "--host", "0.0.0.0", "--port", "0", env=env)
    assert_one_line_error(result, 2, "16 characters")


# --- exit code 3: model ---------------------------------------------------------------------


def test_missing_embedding_model(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# Pilots\n\nPilots run jobs.\n")
    env = _env(DIRAC_MCP_DATA_DIR=str(tmp_path), DIRAC_MCP_INDEX_PATH=str(tmp_path / "index"))
    model = str(tmp_path / "no-such-model")
    result = run_cli("index", str(doc), "--no-progress", "--embedding-model", model, env=env)
    assert_one_line_error(result, 3)


# --- exit code 4: index ---------------------------------------------------------------------


def test_unreachable_qdrant_server(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = _env(DIRAC_MCP_DATA_DIR=str(tmp_path), DIRAC_MCP_QDRANT_TIMEOUT_S="2")
    result = run_cli("status", "--qdrant-url", f"http://127.0.0.1:{port}", env=env)
    assert_one_line_error(result, 4)


# --- exit code 5: not found -----------------------------------------------------------------


def test_eval_of_a_missing_file(tmp_path):
    result = run_cli("eval", str(tmp_path / "missing.jsonl"), env=_env())
    assert_one_line_error(result, 5, "missing.jsonl")


def test_index_of_a_missing_path(tmp_path):
    env = _env(DIRAC_MCP_DATA_DIR=str(tmp_path))
    result = run_cli("index", str(tmp_path / "nowhere"), env=env)
    assert_one_line_error(result, 5, "nowhere")


def test_qa_export_of_a_missing_file(tmp_path):
    result = run_cli("qa", "export", str(tmp_path / "none.jsonl"), "-o", str(tmp_path), env=_env())
    assert_one_line_error(result, 5)


# --- exit code 6: output could not be written -----------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_output_to_dev_full(fixture_index):
    settings, _ = fixture_index
    with open("/dev/full", "w") as full:
        result = run_cli("status", env=_env(settings), stdout=full)
    assert_one_line_error(result, 6, "No space left")
