"""The one CPU bf16 check every model's precision choice uses."""

from types import SimpleNamespace

import pytest

from dirac_docs_mcp.hardware import cpu_has_fast_bf16


def test_a_torch_without_onednn_counts_as_no_fast_bf16():
    # a build without the mkldnn ops (some ARM wheels) cannot be installed here, so a
    # stand-in object without them: the check must answer False, not raise
    assert cpu_has_fast_bf16(SimpleNamespace(ops=SimpleNamespace())) is False


def test_answers_what_onednn_reports():
    torch = pytest.importorskip("torch")
    assert cpu_has_fast_bf16(torch) is bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
