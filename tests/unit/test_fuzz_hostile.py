"""Hostile input for every loader and the chunker: random bytes, truncated documents, deep
nesting and huge lines. A loader may refuse a file only with LoaderError; the chunker must
always respect its bound. Counts of generated inputs are set here (max_examples)."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dirac_docs_mcp.errors import LoaderError
from dirac_docs_mcp.indexer.chunker import chunk_document
from dirac_docs_mcp.indexer.loaders import load_document

SUFFIXES = [".rst", ".md", ".txt", ".cfg", ".pdf"]
FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def words(text: str) -> int:
    return len(text.split())


def _load_and_chunk(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    try:
        doc = load_document(path, name)
    except LoaderError as exc:
        assert "\n" not in str(exc)  # one-line, specific message
        return
    for chunk in chunk_document(doc, words, max_tokens=64, overlap_tokens=8, min_tokens=8):
        assert chunk.text.strip()
        assert words(chunk.embed_text) <= 64 or words(chunk.text) <= 64


@FUZZ
@given(data=st.binary(max_size=4096), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes_never_crash_any_loader(tmp_path, data, suffix):
    _load_and_chunk(tmp_path, f"random{suffix}", data)


def _pdf_bytes() -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.drawString(72, 800, "StalledJobAgent declares jobs stalled.")
    c.showPage()
    c.save()
    return buf.getvalue()


PDF = _pdf_bytes()


@FUZZ
@given(cut=st.integers(min_value=0, max_value=len(PDF)), flip=st.integers(0, len(PDF) - 1))
def test_truncated_or_garbled_pdf(tmp_path, cut, flip):
    garbled = bytearray(PDF[:cut] or b"%PDF")
    garbled[flip % len(garbled)] ^= 0xFF
    _load_and_chunk(tmp_path, "broken.pdf", bytes(garbled))


@pytest.mark.parametrize("suffix", [".rst", ".md", ".cfg"])
def test_deep_nesting(tmp_path, suffix):
    depth = 400
    if suffix == ".md":
        text = "".join(f"{'#' * (1 + i % 6)} level {i}\n\ntext {i}\n\n" for i in range(depth))
    elif suffix == ".rst":
        text = "Title\n=====\n\n" + "".join("  " * i + f"- item {i}\n\n" for i in range(depth))
    else:
        text = "".join(f"B{i}\n{{\n" for i in range(depth)) + "Key = v\n" + "}\n" * depth
    _load_and_chunk(tmp_path, f"deep{suffix}", text.encode())


@pytest.mark.parametrize("suffix", [".rst", ".md", ".txt", ".cfg"])
def test_huge_line(tmp_path, suffix):
    line = ("MaxJobsInFillMode " * 60_000).encode()  # ~1 MB on one line
    _load_and_chunk(tmp_path, f"huge{suffix}", line)
