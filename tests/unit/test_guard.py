"""indexer.guard: which paths may be read, without a model or an index."""

from __future__ import annotations

import os
import random

import pytest

from dirac_docs_mcp.indexer.guard import (
    BINARY,
    NOT_REGULAR,
    OUTSIDE,
    SkippedFile,
    is_binary,
    read_source,
)


def _reason(path, root, max_bytes=1_000_000) -> str:
    with pytest.raises(SkippedFile) as info:
        read_source(path, root, max_bytes)
    return str(info.value)


def test_links_out_of_the_root_are_refused(tmp_path):
    root, outside = tmp_path / "docs", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.md").write_text("# secret\n")
    (root / "secret.md").symlink_to("../outside/secret.md")
    (root / "passwd.txt").symlink_to("/etc/passwd")
    (root / "inside.md").write_text("# inside\n")
    (root / "alias.md").symlink_to(root / "inside.md")
    assert _reason(root / "secret.md", root) == OUTSIDE
    assert _reason(root / "passwd.txt", root) == OUTSIDE
    assert read_source(root / "alias.md", root, 1000) == b"# inside\n"  # a link within is fine


def test_special_files_are_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.txt")  # reading it would block for ever
    assert _reason(tmp_path / "pipe.txt", tmp_path) == NOT_REGULAR
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    assert _reason(tmp_path / "zero.txt", tmp_path) in (OUTSIDE, NOT_REGULAR)
    # a device inside the root (the root is / here) is not a regular file
    assert _reason(tmp_path / "zero.txt", "/") == NOT_REGULAR


def test_size_cap(tmp_path):
    (tmp_path / "big.md").write_text("word " * 1000)
    assert _reason(tmp_path / "big.md", tmp_path, 4999).startswith("too large (5000 bytes")
    assert len(read_source(tmp_path / "big.md", tmp_path, 5000)) == 5000


def test_binary_content(tmp_path):
    noise = random.Random(0).randbytes(4096)
    (tmp_path / "noise.txt").write_bytes(noise)
    assert _reason(tmp_path / "noise.txt", tmp_path) == BINARY
    assert is_binary(noise.replace(b"\x00", b"a"))  # undecodable even without NUL bytes
    assert is_binary(b"text\x00more text")
    # accented UTF-8, tabs, and a multibyte character cut at the sniff boundary are text
    text = "Paramètres\tdéfaut: «5» — ok\n".encode() * 300
    assert not is_binary(text[:8191]) and not is_binary(b"")
    (tmp_path / "doc.pdf").write_bytes(b"%PDF-1.4\n\x00\x01\x02")  # PDFs are binary by design
    assert read_source(tmp_path / "doc.pdf", tmp_path, 1000).startswith(b"%PDF")
