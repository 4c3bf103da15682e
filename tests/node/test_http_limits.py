"""HTTP limits over real sockets: slow request heads and stalled bodies get 408, idle
sessions expire, weak bearer tokens are refused. No Node needed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from dirac_docs_mcp.errors import ConfigError
from dirac_docs_mcp.http_app import check_bind

from ..conftest import initialize_request
from .http_server import free_port

INITIALIZE = initialize_request("limits-test")
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
READ_TIMEOUT_S = 1.0
SESSION_IDLE_S = 1.5


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    data = tmp_path_factory.mktemp("limits")
    port = free_port()
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(sys.path),
        HF_HUB_OFFLINE="1",
        DIRAC_MCP_DATA_DIR=str(data),
        DIRAC_MCP_INDEX_PATH=str(data / "index"),
        DIRAC_MCP_LOG_LEVEL="WARNING",
        DIRAC_MCP_HTTP_READ_TIMEOUT_S=str(READ_TIMEOUT_S),
        DIRAC_MCP_HTTP_SESSION_IDLE_S=str(SESSION_IDLE_S),
    )
    env.pop("DIRAC_MCP_CONFIG_FILE", None)
    env.pop("DIRAC_MCP_HTTP_BEARER_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dirac_docs_mcp", "serve", "--http", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield port, url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        proc.stderr.close()


def _read_all(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    except TimeoutError:
        pass
    return b"".join(chunks)


def test_slow_request_head_gets_408_and_is_closed(base):
    port, _ = base
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # head never ends
        started = time.monotonic()
        reply = _read_all(sock, READ_TIMEOUT_S + 5)
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert time.monotonic() - started < READ_TIMEOUT_S + 4


def test_idle_connection_without_a_request_is_closed(base):
    port, _ = base
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reply = _read_all(sock, READ_TIMEOUT_S + 5)
    assert reply == b"" or reply.startswith(b"HTTP/1.1 408")


def test_stalled_body_gets_408(base):
    port, _ = base
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Accept: application/json, text/event-stream\r\nContent-Length: 500\r\n\r\n{"js'
        )
        reply = _read_all(sock, READ_TIMEOUT_S + 5)
    assert reply.startswith(b"HTTP/1.1 408"), reply


def test_complete_requests_are_unaffected(base):
    _, url = base
    reply = httpx.post(f"{url}/mcp", json=INITIALIZE, headers=HEADERS, timeout=30)
    assert reply.status_code == 200


def test_idle_session_expires(base):
    _, url = base
    with httpx.Client(timeout=30) as http:
        first = http.post(f"{url}/mcp", json=INITIALIZE, headers=HEADERS)
        session = first.headers["mcp-session-id"]
        headers = {**HEADERS, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        assert http.post(f"{url}/mcp", json=ping, headers=headers).status_code == 200
        time.sleep(SESSION_IDLE_S + 1.5)
        expired = http.post(f"{url}/mcp", json=ping, headers=headers)
    assert expired.status_code == 404


@pytest.mark.parametrize("token", ["", "   ", "short", " " * 20 + "abc", "x" * 15])
@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_weak_bearer_tokens_are_refused(host, token):
    with pytest.raises(ConfigError, match="at least 16 characters"):
        check_bind(host, token)


def test_a_long_enough_token_is_accepted():
    check_bind("0.0.0.0", "  " + "k" * 16 + "  ")
