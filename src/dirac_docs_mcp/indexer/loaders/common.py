"""Helpers every loader shares: decoding bytes, reading a file as text, whitespace,
the section builder and the underline rules of plain-text headings."""

from __future__ import annotations

import logging
from pathlib import Path

from ...errors import LoaderError
from ...schemas import Block, BlockKind, Section

log = logging.getLogger(__name__)


def _collapse(text: str) -> str:
    """Whitespace collapsed to single spaces, stripped."""
    return " ".join(text.split())


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
    text = text.replace("\x00", "")
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoaderError(f"cannot read file: {exc.strerror or exc}") from exc
    return _decode(data)


class _Sections:
    """Collects blocks into sections; a new section starts whenever the breadcrumb changes."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.crumb: list[str] = []
        self.page: int | None = None
        self._current: Section | None = None

    def set_crumb(self, crumb: list[str], page: int | None = None) -> None:
        crumb = [c for c in (_collapse(x) for x in crumb) if c]
        if crumb != self.crumb or page != self.page:
            self.crumb = crumb
            self.page = page
            self._current = None

    def add(self, kind: BlockKind, text: str) -> None:
        if kind == "text":
            text = text.strip()
        else:
            text = text.strip("\n").rstrip()
        if not text.strip():
            return
        if self._current is None:
            self._current = Section(breadcrumb=list(self.crumb), page=self.page)
            self.sections.append(self._current)
        self._current.blocks.append(Block(kind=kind, text=text))


def _one_line(exc: BaseException) -> str:
    text = _collapse(str(exc)) or type(exc).__name__
    return text[:300]
