"""Plain text (``.txt``, command help): headings by underline or keyword header. Also the
fallback for rst that docutils cannot parse."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ...schemas import Document, Section
from .common import (
    _collapse,
    _read_text,
    _Sections,
)

log = logging.getLogger(__name__)


_UNDERLINE = re.compile(r"""^([=\-~^"'`#*+_.:<>])\1{2,}\s*$""")
_KEYWORD_HEADER = re.compile(
    r"^(usage|options|general options|arguments|examples?|description|notes?|parameters|commands|see also)"
    r"\s*:\s*(.*)$",
    re.IGNORECASE,
)


def _is_underline(line: str | None, text: str) -> bool:
    if line is None or not _UNDERLINE.match(line):
        return False
    return len(line.strip()) >= max(3, int(len(text.strip()) * 0.6))


def _parse_plain(text: str, stem: str | None) -> tuple[str, list[Section]]:
    """Paragraphs split on blank lines; underlined headings and ``Options:``-style headers
    start sub-sections.

    With ``stem`` (txt files) the breadcrumb root is the stem and a first heading equal to it
    is the title; without it (rst fallback) the first heading becomes the root.
    """
    out = _Sections()
    root: list[str] = [stem] if stem else []
    title = stem or ""
    level1: str | None = None
    level2: str | None = None
    para: list[str] = []
    seen_heading = False

    def crumb() -> list[str]:
        return root + [x for x in (level1, level2) if x]

    def flush() -> None:
        if not para:
            return
        lines = [ln.rstrip() for ln in para]
        para.clear()
        body = [ln for ln in lines if ln.strip()]
        if not body:
            return
        indented = all(ln.startswith((" ", "\t")) for ln in body)
        shell = any(ln.lstrip().startswith("$ ") for ln in body)
        out.set_crumb(crumb())
        out.add("code" if indented or shell else "text", "\n".join(lines))

    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else None
        heading: str | None = None
        if (
            _UNDERLINE.match(line)
            and nxt is not None
            and nxt.strip()
            and i + 2 < len(lines)
            and _is_underline(lines[i + 2], nxt)
        ):
            heading, i = nxt, i + 3  # over- and underlined title
        elif line.strip() and not _UNDERLINE.match(line) and _is_underline(nxt, line):
            heading, i = line, i + 2
        if heading is not None:
            flush()
            heading = _collapse(heading)
            if not seen_heading and not para and stem is None and not root:
                root, title = [heading], heading
            elif not seen_heading and stem is not None and heading.lower() == stem.lower():
                title = heading
            else:
                level1, level2 = heading, None
            seen_heading = True
            continue
        m = _KEYWORD_HEADER.match(line)
        if m and not line.startswith((" ", "\t")):
            flush()
            level2 = m.group(1).strip()
            if m.group(2).strip():
                para.append(line)
            i += 1
            continue
        if not line.strip():
            flush()
        else:
            para.append(line)
        i += 1
    flush()
    return title, out.sections


def _load_txt(path: Path, source: str) -> Document:
    text = _read_text(path)
    if not text.strip():
        return Document(source=source, title=path.stem, format="txt")
    title, sections = _parse_plain(text, path.stem)
    return Document(source=source, title=title, format="txt", sections=sections)
