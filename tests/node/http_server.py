"""Start the real server over streamable HTTP on loopback, in a subprocess (tests, benchmarks).

``serve --http`` is used once the CLI knows the HTTP settings; until then a three-line
launcher calls ``http_app.run_http`` with the same settings read from the same variables.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

LAUNCHER = """\
import json, os, sys
from dirac_docs_mcp.config import load_settings
from dirac_docs_mcp.http_app import run_http
from dirac_docs_mcp.server import build_server
env = os.environ.get
run_http(build_server(load_settings()), sys.argv[1], int(sys.argv[2]),
         env("DIRAC_MCP_HTTP_BEARER_TOKEN") or None,
         json.loads(env("DIRAC_MCP_HTTP_ALLOWED_ORIGINS") or "[]"),
         int(env("DIRAC_MCP_HTTP_MAX_BODY_BYTES") or 1_000_000))
"""


def cli_serves_http_settings() -> bool:
    from dirac_docs_mcp.config import Settings

    return "http_bearer_token" in Settings.model_fields


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    url: str  # the MCP endpoint, http://127.0.0.1:PORT/mcp
    base: str  # http://127.0.0.1:PORT
    port: int
    log_path: Path  # the server's stderr
    stdout_path: Path  # should stay empty: logs go to stderr
    process: subprocess.Popen

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@contextlib.contextmanager
def http_server(
    data_dir: Path,
    index_path: Path,
    *,
    bearer_token: str | None = None,
    allowed_origins: list[str] | None = None,
    max_body_bytes: int | None = None,
    log_level: str = "WARNING",
    startup_timeout_s: float = 60.0,
) -> Iterator[RunningServer]:
    """The server on 127.0.0.1:<free port>; stopped (SIGTERM, then SIGKILL) on exit."""
    port = free_port()
    env = dict(os.environ)
    env.update(
        DIRAC_MCP_DATA_DIR=str(data_dir),
        DIRAC_MCP_INDEX_PATH=str(index_path),
        DIRAC_MCP_LOG_LEVEL=log_level,
        HF_HUB_OFFLINE="1",
    )
    for key, value in (
        ("DIRAC_MCP_HTTP_BEARER_TOKEN", bearer_token),
        ("DIRAC_MCP_HTTP_ALLOWED_ORIGINS", json.dumps(allowed_origins or [])),
        ("DIRAC_MCP_HTTP_MAX_BODY_BYTES", None if max_body_bytes is None else str(max_body_bytes)),
    ):
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    if cli_serves_http_settings():
        cmd = [sys.executable, "-m", "dirac_docs_mcp", "serve", "--http"]
        cmd += ["--host", "127.0.0.1", "--port", str(port)]
    else:
        cmd = [sys.executable, "-c", LAUNCHER, "127.0.0.1", str(port)]
    log_dir = Path(tempfile.mkdtemp(prefix="dirac-http-"))
    log_path, stdout_path = log_dir / "stderr.log", log_dir / "stdout.log"
    with open(log_path, "wb") as err, open(stdout_path, "wb") as out:
        process = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    base = f"http://127.0.0.1:{port}"
    server = RunningServer(f"{base}/mcp", base, port, log_path, stdout_path, process)
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"HTTP server exited with {process.returncode}:\n{server.log_tail()}"
                )
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"HTTP server not ready in {startup_timeout_s}s:\n{server.log_tail()}"
                )
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
