"""Which discovered paths the indexer may read, and reading them safely.

A docs folder may hold things that are not documents: a link to a file outside it
(``passwd.txt -> /etc/passwd``), a named pipe (reading it blocks for ever), a link to
``/dev/zero`` (reading it never ends), a huge file, random bytes named ``.txt``. Each is
skipped with a one-line reason the index report shows; none is ever read past
``max_file_bytes``.
"""

from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path

OUTSIDE = "outside the indexed folder"
NOT_REGULAR = "not a regular file"
BINARY = "binary content"

#: bytes looked at to decide whether a text file is binary
SNIFF_BYTES = 8192
#: share of undecodable or control characters above which a text file is binary
MAX_CONTROL_SHARE = 0.30
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\x1b")
#: formats that are binary by design (their loader parses the bytes)
BINARY_FORMATS = frozenset({".pdf"})


class SkippedFile(Exception):
    """A path that is not indexed; the message is the reason."""


def too_large(size: int, limit: int) -> str:
    return f"too large ({size} bytes; the limit is max_file_bytes={limit})"


def is_binary(head: bytes) -> bool:
    """NUL bytes, or more than ``MAX_CONTROL_SHARE`` of the characters undecodable as UTF-8
    or control characters, in ``head`` (the first few KB)."""
    if not head:
        return False
    if b"\x00" in head:
        return True
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(head, final=False)
    if not text:
        return False
    bad = sum(1 for ch in text if ch == "\ufffd" or (ch < " " and ch not in _TEXT_CONTROLS))
    return bad / len(text) > MAX_CONTROL_SHARE


def read_source(path: Path, root: Path, max_bytes: int) -> bytes:
    """The bytes of ``path`` if it may be indexed, else :class:`SkippedFile`.

    Its real path (links resolved) must be under the real ``root``; it must be a regular
    file of at most ``max_bytes`` bytes; a text format must not look binary. ``OSError``
    (a vanished file, no permission) is left to the caller.
    """
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(os.path.realpath(root)):
        raise SkippedFile(OUTSIDE)
    info = os.stat(real)
    if not stat.S_ISREG(info.st_mode):
        raise SkippedFile(NOT_REGULAR)
    if info.st_size > max_bytes:
        raise SkippedFile(too_large(info.st_size, max_bytes))
    # O_NONBLOCK: should a pipe be swapped in after the stat, opening it does not block
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise SkippedFile(NOT_REGULAR)
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise SkippedFile(too_large(len(data), max_bytes))
    if path.suffix.lower() not in BINARY_FORMATS and is_binary(data[:SNIFF_BYTES]):
        raise SkippedFile(BINARY)
    return data
