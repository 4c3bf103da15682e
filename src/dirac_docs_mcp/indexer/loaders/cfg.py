"""DIRAC CFG files: sections from the nesting of ``Name { ... }`` blocks."""

from __future__ import annotations

import logging
import re
from pathlib import Path, PurePosixPath

from ...schemas import Document, Section
from .common import (
    _collapse,
    _read_text,
    _Sections,
)

log = logging.getLogger(__name__)


_CFG_OPTION = re.compile(r"^[^#={}\s][^={}]*?\s*\+?=")
_CFG_NAME = re.compile(r"^[^#={}]+$")
_CFG_MARKER = re.compile(r"^##\s*(BEGIN|END)\b")


def _cfg_root(path: Path, source: str) -> tuple[str, list[str]]:
    """Title and breadcrumb prefix: ``src/DIRAC/XSystem/ConfigTemplate.cfg`` holds the
    options of ``/Systems/X/<instance>``."""
    parent = PurePosixPath(source).parent.name
    if (
        path.name == "ConfigTemplate.cfg"
        and parent.endswith("System")
        and len(parent) > len("System")
    ):
        system = parent[: -len("System")]
        return f"{system} ConfigTemplate", [f"{system} ConfigTemplate", "Systems", system]
    return path.name, [path.name]


def _parse_cfg(text: str, root: list[str]) -> list[Section]:
    """Blocks of comment lines + options become text blocks under ``root`` + nesting path.

    Comment lines directly before a ``Name { ... }`` block (no blank line between) document
    it and go into the block. Unbalanced braces are tolerated (extra ``}`` ignored, unclosed blocks end at EOF).
    """
    out = _Sections()
    stack: list[str] = []
    group: list[str] = []  # comment lines + option lines, one text block
    has_option = False
    owned = 0  # leading lines of group carried in from above the current block's name
    pending_name: str | None = None  # a bare line that may name the next ``{`` block

    def flush() -> None:
        nonlocal has_option, owned
        if group:
            out.set_crumb(root + stack)
            out.add("text", "\n".join(group))
            group.clear()
        has_option = False
        owned = 0

    def name_as_text() -> None:
        nonlocal pending_name
        if pending_name is not None:
            group.append(pending_name)
            pending_name = None

    for raw in text.split("\n"):
        line = raw.strip()
        if not line:  # paragraphs end at blank lines
            name_as_text()
            flush()
            continue
        if line.startswith("#"):
            if _CFG_MARKER.match(line) or not line.strip("#").strip():
                continue
            name_as_text()
            if has_option:
                flush()
            group.append(line)
            continue
        if line.endswith("{") and "=" not in line:
            name = _collapse(line[:-1]) or pending_name or "?"
            pending_name = None
            # comments right above the name describe the new block; older lines stay
            carried = [] if has_option else group[owned:]
            del group[len(group) - len(carried) :]
            flush()
            stack.append(_collapse(name))
            group.extend(carried)
            owned = len(carried)
            continue
        if set(line) <= {"}", " ", "\t"}:
            name_as_text()
            flush()
            for _ in range(line.count("}")):
                if stack:
                    stack.pop()
            continue
        name_as_text()
        if _CFG_NAME.match(line) and not _CFG_OPTION.match(line):
            pending_name = line
            continue
        group.append(line)
        has_option = True
    name_as_text()
    flush()
    return out.sections


def _load_cfg(path: Path, source: str) -> Document:
    text = _read_text(path)
    title, root = _cfg_root(path, source)
    if not text.strip():
        return Document(source=source, title=title, format="cfg")
    return Document(source=source, title=title, format="cfg", sections=_parse_cfg(text, root))
