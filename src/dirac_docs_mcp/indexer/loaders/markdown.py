"""Markdown via markdown-it-py (front matter title, MkDocs admonitions unwrapped)."""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path
from typing import Any

from ...schemas import Document, Section
from .common import (
    _collapse,
    _read_text,
    _Sections,
)

log = logging.getLogger(__name__)


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FM_TITLE = re.compile(r"^title\s*:\s*(.+?)\s*$", re.MULTILINE)
_MKDOCS_BLOCK = re.compile(
    r"^([ \t]*)(!!!|\?\?\?\+?|===)[ \t]*([\w-]*)[ \t]*(?:\"([^\"]*)\")?[ \t]*$"
)
_FENCE = re.compile(r"^[ \t]*(```+|~~~+)")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]*>")


def _md_front_matter(text: str) -> tuple[str, str]:
    """Strip YAML front matter; return (title from it or "", remaining text)."""
    m = _FRONT_MATTER.match(text)
    if not m:
        return "", text
    t = _FM_TITLE.search(m.group(1))
    title = t.group(1).strip().strip("\"'") if t else ""
    return _collapse(title), text[m.end() :]


def _md_unwrap_mkdocs(text: str) -> str:
    """Turn mkdocs-material admonitions and tabs (``!!! note "T"`` + indented body) into
    a label paragraph and an un-indented body, so CommonMark does not read the body as code."""
    out: list[str] = []
    fence: str | None = None
    stack: list[int] = []  # original indentation of the bodies of open mkdocs blocks
    for line in text.split("\n"):
        if line.strip():
            width = len(line) - len(line.lstrip(" "))
            while stack and width < stack[-1]:
                stack.pop()
            shift = stack[-1] if stack else 0
            line = line[shift:]
        else:
            width = 0
        fm = _FENCE.match(line)
        if fm:
            marker = fm.group(1)[:3]
            if fence is None:
                fence = marker
            elif marker == fence:
                fence = None
            out.append(line)
            continue
        m = None if fence else _MKDOCS_BLOCK.match(line)
        if m and (m.group(3) or m.group(4)):
            indent, kind, name, label = m.groups()
            if kind == "===":
                head = label or name
            else:
                head = (name or "note").capitalize() + (f": {label}" if label else ":")
            out.extend([f"{indent}{head}", ""])
            stack.append(width + 4)
            continue
        out.append(line)
    return "\n".join(out)


def _md_inline(token: Any) -> str:
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "html_inline":
            parts.append(" " if child.content.lower().startswith("<br") else "")
    if not token.children:
        parts.append(token.content)
    return "".join(parts)


def _parse_md(text: str, fm_title: str) -> tuple[str, list[Section]]:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark").enable("table")
    tokens = md.parse(text)
    h1 = next(
        (
            _collapse(_md_inline(tokens[i + 1]))
            for i, t in enumerate(tokens[:-1])
            if t.type == "heading_open" and t.tag == "h1"
        ),
        "",
    )
    root = [fm_title] if fm_title and not h1 else []
    title = fm_title or h1
    out = _Sections()
    out.set_crumb([title] if title else [])
    stack: dict[int, str] = {}
    lines: list[str] = []
    depth = 0
    bullet = False
    in_table = False
    rows: list[str] = []
    row: list[str] = []

    def flush() -> None:
        if lines:
            out.add("text", "\n".join(lines))
            lines.clear()

    def emit_text(value: str) -> None:
        nonlocal bullet
        value = _collapse(value)
        if not value:
            return
        if depth == 0:
            flush()
            out.add("text", value)
        else:
            lead = "  " * (depth - 1)
            lines.append(f"{lead}- {value}" if bullet else f"{lead}  {value}")
            bullet = False

    i = 0
    while i < len(tokens):
        tok = tokens[i]
        kind = tok.type
        if kind == "heading_open":
            level = int(tok.tag[1:]) if tok.tag[1:].isdigit() else 1
            heading = _collapse(_md_inline(tokens[i + 1])) if i + 1 < len(tokens) else ""
            flush()
            if heading:
                for lv in [lv for lv in stack if lv >= level]:
                    del stack[lv]
                stack[level] = heading
                out.set_crumb(root + [stack[lv] for lv in sorted(stack)])
            i += 3
            continue
        if kind == "inline":
            if in_table:
                row.append(_collapse(_md_inline(tok)))
            else:
                emit_text(_md_inline(tok))
        elif kind in ("fence", "code_block"):
            flush()
            bullet = False
            out.add("code", tok.content)
        elif kind in ("bullet_list_open", "ordered_list_open"):
            depth += 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            depth = max(0, depth - 1)
            if depth == 0:
                flush()
        elif kind == "list_item_open":
            bullet = True
        elif kind == "table_open":
            flush()
            in_table, rows = True, []
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close":
            if any(row):
                rows.append(" | ".join(row))
        elif kind == "table_close":
            in_table = False
            out.add("table", "\n".join(rows))
        elif kind == "html_block":
            stripped = html.unescape(_HTML_TAG.sub(" ", _HTML_COMMENT.sub(" ", tok.content)))
            emit_text(stripped)
        i += 1
    flush()
    if not title:
        first = next((s.breadcrumb[0] for s in out.sections if s.breadcrumb), "")
        title = first
    return title, out.sections


def _load_md(path: Path, source: str) -> Document:
    text = _read_text(path)
    if not text.strip():
        return Document(source=source, title="", format="md")
    fm_title, body = _md_front_matter(text)
    title, sections = _parse_md(_md_unwrap_mkdocs(body), fm_title)
    return Document(source=source, title=title, format="md", sections=sections)
