"""The MCP conformance suite (Node) against the real server over streamable HTTP on loopback.

Every scenario of the pinned suite must pass, except those listed with a reason in
``conformance_expected_failures.json``; a listed scenario that passes fails the test too,
so the baseline cannot go stale. The scenarios that pass are recorded in the same file.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from .http_server import http_server

pytestmark = pytest.mark.node

BASELINE = Path(__file__).with_name("conformance_expected_failures.json")
RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")


def _scenario_results(out_dir: Path) -> dict[str, list[dict]]:
    """scenario name → its checks, from the suite's ``-o`` folder (one sub-folder per run)."""
    results: dict[str, list[dict]] = {}
    for sub in sorted(out_dir.iterdir()):
        match = RESULT_DIR.match(sub.name)
        if match and (sub / "checks.json").is_file():
            results[match["scenario"]] = json.loads((sub / "checks.json").read_text())
    return results


def _failed(checks: list[dict]) -> bool:
    # the suite's own rule (its --expected-failures mode): a FAILURE or a WARNING fails
    return any(check.get("status") in ("FAILURE", "WARNING") for check in checks)


def test_conformance_suite(node_tools, fixture_index, tmp_path):
    settings, _ = fixture_index
    baseline = json.loads(BASELINE.read_text())
    expected = {**baseline["expected_failures"], **baseline.get("not_offered", {})}
    out_dir = tmp_path / "conformance"
    with http_server(settings.data_dir, settings.index_path) as server:
        proc = subprocess.run(
            node_tools.command("conformance", "server", "--url", server.url, "-o", str(out_dir)),
            env=node_tools.env,
            capture_output=True,
            text=True,
            timeout=480,
        )
        server_log = server.log_tail()
    results = _scenario_results(out_dir) if out_dir.is_dir() else {}
    assert len(results) >= 20, (
        f"conformance ran {len(results)} scenarios (rc={proc.returncode})\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\nserver log:\n{server_log}"
    )
    failed = {name for name, checks in results.items() if _failed(checks)}
    passed = set(results) - failed

    def why(name: str) -> str:
        bad = [c for c in results[name] if c.get("status") in ("FAILURE", "WARNING")]
        return "; ".join(f"{c.get('id')}: {c.get('errorMessage', c.get('status'))}" for c in bad)

    unexpected = {name: why(name) for name in sorted(failed - set(expected))}
    stale = sorted(set(expected) - failed)
    recorded = set(baseline["passed"])
    print(f"conformance: {len(passed)} passed: {', '.join(sorted(passed))}")
    print(f"conformance: {len(failed)} expected failures: {', '.join(sorted(failed))}")
    assert not unexpected, f"scenarios failing outside the baseline: {unexpected}"
    assert not stale, f"baseline entries that passed or did not run (remove them): {stale}"
    assert passed == recorded, (
        f"passed scenarios changed: new {sorted(passed - recorded)}, "
        f"gone {sorted(recorded - passed)}; update 'passed' in {BASELINE.name}"
    )
    # the checks this server must never lose
    for name in ("server-initialize", "tools-list", "dns-rebinding-protection", "ping"):
        assert name in passed
