"""Outside clients on the real wire: the MCP Inspector CLI (Node) drives the stdio server,
and the HTTP one with a bearer token."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .http_server import http_server

pytestmark = pytest.mark.node


def _inspector(node_tools, settings, *args: str, expect_rc: int | None = 0) -> dict:
    """Run ``mcp-inspector --cli --format json`` against ``python -m dirac_docs_mcp serve``."""
    server_env: list[str] = []
    for key, value in (
        ("DIRAC_MCP_DATA_DIR", str(settings.data_dir)),
        ("DIRAC_MCP_INDEX_PATH", str(settings.index_path)),
        ("HF_HUB_OFFLINE", "1"),
        # the Inspector starts the server with a minimal environment: pass on what it needs
        *((k, os.environ[k]) for k in ("PYTHONPATH",) if k in os.environ),
    ):
        server_env += ["-e", f"{key}={value}"]
    cmd = node_tools.command(
        "mcp-inspector",
        "--cli",
        "--format",
        "json",
        "--quiet",
        *server_env,
        *args,
        "--",
        sys.executable,
        "-m",
        "dirac_docs_mcp",
        "serve",
    )
    proc = subprocess.run(cmd, env=node_tools.env, capture_output=True, text=True, timeout=180)
    detail = f"rc={proc.returncode}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}"
    if expect_rc is not None:
        assert proc.returncode == expect_rc, detail
    out = json.loads(proc.stdout)
    assert "result" in out, detail
    return out["result"]


def test_tools_list(node_tools, fixture_index):
    settings, _ = fixture_index
    result = _inspector(node_tools, settings, "--method", "tools/list")
    tools = {tool["name"]: tool for tool in result["tools"]}
    assert "search_dirac_docs" in tools
    search = tools["search_dirac_docs"]
    assert search["annotations"]["readOnlyHint"] is True
    assert search["inputSchema"]["required"] == ["query"]
    assert search["inputSchema"]["properties"]["limit"]["minimum"] == 1
    assert "hits" in search["outputSchema"]["properties"]


def test_search_call_and_bad_limit(node_tools, fixture_index):
    settings, _ = fixture_index
    call = ("--method", "tools/call", "--tool-name", "search_dirac_docs")
    result = _inspector(node_tools, settings, *call, "--tool-arg", "query=stalled jobs heartbeat")
    assert result.get("isError") is not True
    hits = result["structuredContent"]["hits"]
    assert hits[0]["source"] == "guide/wms/agents.rst"
    assert hits[0]["link"] == "dirac-docs://guide/wms/agents.rst"
    assert "guide/wms/agents.rst" in result["content"][0]["text"]

    # a tool error is a result with isError (the Inspector exits 5 for it), not a crash
    bad = _inspector(
        node_tools, settings, *call, "--tool-arg", "query=stalled", "limit=0", expect_rc=5
    )
    assert bad["isError"] is True
    assert "limit" in bad["content"][0]["text"]


def test_qa_tool_is_listed_as_writing_and_refuses_paths_out(node_tools, fixture_index):
    settings, _ = fixture_index
    listed = _inspector(node_tools, settings, "--method", "tools/list")
    qa = {tool["name"]: tool for tool in listed["tools"]}["generate_qa_pairs"]
    assert qa["annotations"]["readOnlyHint"] is False
    assert qa["inputSchema"]["required"] == ["output"]
    refused = _inspector(
        node_tools,
        settings,
        "--method",
        "tools/call",
        "--tool-name",
        "generate_qa_pairs",
        "--tool-arg",
        "output=/etc/passwd.jsonl",
        "all_chunks=true",
        expect_rc=5,
    )
    assert refused["isError"] is True
    assert "relative to the QA output folder" in refused["content"][0]["text"]
    assert not os.path.exists("/etc/passwd.jsonl")


def test_resource_read(node_tools, fixture_index):
    settings, _ = fixture_index
    uri = "dirac-docs://guide/wms/agents.rst"  # the link search_dirac_docs gives for that file
    result = _inspector(node_tools, settings, "--method", "resources/read", "--uri", uri)
    (content,) = result["contents"]
    assert content["uri"] == uri
    assert "The StalledJobAgent hunts for stalled jobs" in content["text"]

    status = _inspector(
        node_tools, settings, "--method", "resources/read", "--uri", "dirac-docs-index://status"
    )
    assert json.loads(status["contents"][0]["text"])["files"] == 6


def test_prompt_get(node_tools, fixture_index):
    settings, _ = fixture_index
    result = _inspector(
        node_tools,
        settings,
        "--method",
        "prompts/get",
        "--prompt-name",
        "dirac_support",
        "--prompt-args",
        "question=How do I renew my proxy?",
    )
    (message,) = result["messages"]
    assert message["role"] == "user"
    text = message["content"]["text"]
    assert "search_dirac_docs" in text
    assert text.endswith("User question: How do I renew my proxy?")


def test_tools_list_over_http_with_token(node_tools, fixture_index, tmp_path):
    settings, _ = fixture_index
    token = "inspector-token-81d2"
    with http_server(settings.data_dir, tmp_path / "index", bearer_token=token) as server:
        base = ("--cli", "--format", "json", "--quiet", "--method", "tools/list")
        ok = subprocess.run(
            node_tools.command(
                "mcp-inspector",
                *base,
                "--server-url",
                server.url,
                "--header",
                f"Authorization: Bearer {token}",
            ),
            env=node_tools.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        refused = subprocess.run(
            node_tools.command(
                "mcp-inspector", *base, "--stored-auth-only", "--server-url", server.url
            ),
            env=node_tools.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert ok.returncode == 0, ok.stderr[-2000:]
    tools = json.loads(ok.stdout)["result"]["tools"]
    assert "search_dirac_docs" in [t["name"] for t in tools]
    assert refused.returncode != 0 and "auth_required" in refused.stderr, refused.stderr[-2000:]
