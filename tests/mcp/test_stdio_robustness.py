"""The stdio server over a real pipe: every malformed request gets an error for its id,
Ctrl+C stops it at once, and a client that closes its end gets one line and exit 6."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from ..conftest import initialize_request

INITIALIZE = initialize_request("stdio-robustness")


class StdioServer:
    def __init__(self, tmp_path) -> None:
        env = dict(
            os.environ,
            DIRAC_MCP_DATA_DIR=str(tmp_path / "data"),
            DIRAC_MCP_INDEX_PATH=str(tmp_path / "index"),
            HF_HUB_OFFLINE="1",
            PYTHONPATH=os.pathsep.join(sys.path),
        )
        env.pop("DIRAC_MCP_CONFIG_FILE", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dirac_docs_mcp", "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )

    def send(self, line: str | bytes) -> None:
        data = line.encode() if isinstance(line, str) else line
        self.proc.stdin.write(data + b"\n")
        self.proc.stdin.flush()

    def receive(self, timeout: float = 10.0) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, f"no reply within {timeout}s"
        line = self.proc.stdout.readline()
        assert line, "server closed stdout"
        return json.loads(line)

    def handshake(self) -> None:
        self.send(json.dumps(INITIALIZE))
        assert self.receive(60)["id"] == 1
        self.send('{"jsonrpc":"2.0","method":"notifications/initialized"}')

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass


@pytest.fixture
def server(tmp_path):
    running = StdioServer(tmp_path)
    try:
        running.handshake()
        yield running
    finally:
        running.stop()


MALFORMED = [
    # (line, expected id, expected code)
    ('{"jsonrpc":"2.0","id":11,"method":"tools/list","params":[1,2]}', 11, -32602),
    ('{"jsonrpc":"2.0","id":12,"method":"ping","params":"x"}', 12, -32602),
    ('{"jsonrpc":"2.0","id":13}', 13, -32600),
    ('{"jsonrpc":"2.0","id":"s14"}', "s14", -32600),
    ('{"jsonrpc":"1.0","id":15,"method":"ping"}', 15, -32600),
    ('{"id":16,"method":"ping"}', 16, -32600),
    ('{"jsonrpc":"2.0","id":17,"method":7}', 17, -32600),
    (
        '{"jsonrpc":"2.0","id":18,"method":"tools/call","params":{"name":"search_dirac_docs",'
        '"arguments":{"query":"\\ud800"}}}',
        18,
        -32700,
    ),
    (b'{"jsonrpc":"2.0","id":19,"method":"ping","params":{"x":"\xff"}}', 19, -32700),
    ("this is not json", None, -32700),
    ('{"jsonrpc":"2.0","id":true,"method":"ping"}', None, -32600),
    ("[]", None, -32600),
]


def test_malformed_requests_get_an_error_for_their_id(server):
    for line, request_id, code in MALFORMED:
        server.send(line)
        reply = server.receive(10)
        assert reply["id"] == request_id, (line, reply)
        assert reply["error"]["code"] == code, (line, reply)
        assert "result" not in reply
    # a malformed notification is not answered, and the session still works
    server.send('{"jsonrpc":"2.0","method":"notifications/cancelled","params":[1]}')
    server.send('{"jsonrpc":"2.0","id":99,"method":"ping"}')
    assert server.receive(10) == {"jsonrpc": "2.0", "id": 99, "result": {}}


def test_sigint_stops_the_server_promptly(server):
    server.send('{"jsonrpc":"2.0","id":2,"method":"ping"}')
    assert server.receive(10)["id"] == 2
    started = time.monotonic()
    server.proc.send_signal(signal.SIGINT)
    code = server.proc.wait(timeout=10)
    assert time.monotonic() - started < 5
    assert code == 130
    assert server.proc.stdout.read() == b""  # nothing but protocol on stdout
    assert b"Traceback" not in server.proc.stderr.read()


def test_sigterm_stops_the_server_promptly(server):
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=10) == 143


def test_stdin_closed_exits_zero(server):
    server.proc.stdin.close()
    assert server.proc.wait(timeout=10) == 0


def test_stdout_gone_gives_one_line_and_exit_6(server):
    server.proc.stdout.close()  # the client stops reading
    server.send('{"jsonrpc":"2.0","id":3,"method":"ping"}')
    code = server.proc.wait(timeout=10)
    stderr = server.proc.stderr.read().decode()
    assert code == 6
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]] and "stdout" in errors[0], stderr
