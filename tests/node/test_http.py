"""Streamable HTTP on loopback, over real sockets, with the SDK client in both protocol
generations; bearer token, Origin/Host checks, body bound, bind check. No Node needed."""

from __future__ import annotations

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from dirac_docs_mcp.errors import ConfigError
from dirac_docs_mcp.http_app import check_bind, is_loopback

from ..conftest import initialize_request
from .http_server import http_server

TOKEN = "test-token-4f9c2e"
MAX_BODY = 200_000
EXTRA_ORIGIN = "http://tools.example:6274"
MODES = {"legacy": "2025-11-25", "auto": "2026-07-28"}
INITIALIZE = initialize_request("raw-http-test")
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def served(fixture_index):
    settings, _ = fixture_index
    with http_server(
        settings.data_dir,
        settings.index_path,
        max_body_bytes=MAX_BODY,
        allowed_origins=[EXTRA_ORIGIN],
    ) as server:
        yield server


@pytest.fixture(scope="module")
def served_with_token(fixture_index, tmp_path_factory):
    settings, _ = fixture_index
    # its own (empty) index folder: these tests never search, and the embedded index
    # allows one process at a time
    index = tmp_path_factory.mktemp("token-index") / "index"
    with http_server(settings.data_dir, index, bearer_token=TOKEN) as server:
        yield server


@pytest.mark.anyio
@pytest.mark.parametrize("mode", list(MODES))
async def test_search_over_http_in_both_protocol_generations(served, mode):
    async with Client(served.url, mode=mode) as client:
        assert client.protocol_version == MODES[mode]
        tools = (await client.list_tools()).tools
        result = await client.call_tool("search_dirac_docs", {"query": "stalled jobs heartbeat"})
        bad = await client.call_tool("search_dirac_docs", {"query": "stalled", "limit": 0})
    assert "search_dirac_docs" in [t.name for t in tools]
    assert not result.is_error, result.content
    assert result.structured_content["hits"][0]["source"] == "guide/wms/agents.rst"
    assert bad.is_error and "limit" in bad.content[0].text


def test_healthz_and_logs_stay_off_stdout(served):
    response = httpx.get(f"{served.base}/healthz")
    assert (response.status_code, response.text) == (200, "ok")
    assert served.stdout_path.read_text() == ""


def test_disallowed_origin_is_403_and_allowed_origins_pass(served):
    evil = httpx.post(
        served.url, json=INITIALIZE, headers={**MCP_HEADERS, "Origin": "http://evil.example"}
    )
    assert evil.status_code == 403
    for origin in (
        f"http://localhost:{served.port}",
        f"http://127.0.0.1:{served.port}",
        EXTRA_ORIGIN,
    ):
        ok = httpx.post(served.url, json=INITIALIZE, headers={**MCP_HEADERS, "Origin": origin})
        assert ok.status_code == 200, (origin, ok.text)
    other_port = httpx.post(
        served.url, json=INITIALIZE, headers={**MCP_HEADERS, "Origin": "http://localhost:1"}
    )
    assert other_port.status_code == 403


def test_rebound_host_is_rejected(served):
    # DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends its own Host
    response = httpx.post(
        served.url, json=INITIALIZE, headers={**MCP_HEADERS, "Host": f"evil.example:{served.port}"}
    )
    assert response.status_code == 421


def test_oversized_body_is_413(served):
    big = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"' + b"x" * MAX_BODY + b'"}}'
    headers = {**MCP_HEADERS, "Content-Type": "application/json"}
    declared = httpx.post(served.url, content=big, headers=headers)
    assert declared.status_code == 413

    def chunks():  # no Content-Length: the bound holds while streaming too
        for i in range(0, len(big), 16_384):
            yield big[i : i + 16_384]

    streamed = httpx.post(served.url, content=chunks(), headers=headers)
    assert streamed.status_code == 413
    # and the server is still fine
    assert httpx.post(served.url, json=INITIALIZE, headers=MCP_HEADERS).status_code == 200


def test_token_required_when_configured(served_with_token):
    url = served_with_token.url
    missing = httpx.post(url, json=INITIALIZE, headers=MCP_HEADERS)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer ")
    wrong = httpx.post(
        url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": "Bearer not-the-token"}
    )
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    basic = httpx.post(url, json=INITIALIZE, headers=MCP_HEADERS, auth=("user", TOKEN))
    assert basic.status_code == 401
    good = httpx.post(
        url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"}
    )
    assert good.status_code == 200, good.text
    # liveness needs no token and says nothing
    assert httpx.get(f"{served_with_token.base}/healthz").status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize("mode", list(MODES))
async def test_sdk_client_with_token(served_with_token, mode):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        transport = streamable_http_client(served_with_token.url, http_client=http)
        async with Client(transport, mode=mode) as client:
            assert client.protocol_version == MODES[mode]
            tools = (await client.list_tools()).tools
    assert "search_dirac_docs" in [t.name for t in tools]


@pytest.mark.anyio
async def test_sdk_client_without_token_is_refused(served_with_token):
    with anyio.fail_after(60), pytest.raises(ExceptionGroup) as info:
        async with Client(served_with_token.url, mode="legacy") as client:
            await client.list_tools()
    # the SDK turns the 401 into an MCPError inside its task groups
    assert info.group_contains(MCPError, match="error response")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.10.0.3", "::1", "[::1]", "localhost"])
def test_loopback_binds_need_no_token(host):
    assert is_loopback(host)
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.20", "dirac.example.org"])
def test_other_binds_need_a_token(host):
    with pytest.raises(ConfigError, match="bearer token"):
        check_bind(host, None)
    check_bind(host, TOKEN)
