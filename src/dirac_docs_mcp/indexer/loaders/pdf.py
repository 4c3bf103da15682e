"""PDF via pypdf: text per page, numbered headings become sections."""

from __future__ import annotations

import io
import logging
import re
import unicodedata
from pathlib import Path

from ...errors import LoaderError
from ...schemas import Document
from .common import (
    _collapse,
    _one_line,
    _Sections,
)

log = logging.getLogger(__name__)


_PDF_TITLE_SUFFIX = re.compile(r"\s+[—–|-]\s+[^—–|]*\bdocumentation\s*$", re.IGNORECASE)
_PDF_HEADING = re.compile(r"^(\d+(?:\.\d+)+\.?)\s+[A-Z][^\n]{0,100}$")
_SENTENCE_END = re.compile(r"[.!?:]['\")\]]*$")


def _pdf_paragraphs(text: str) -> list[str]:
    text = text.replace("\x00", "")
    if re.search(r"\n[ \t]*\n", text):
        return [p.strip("\n") for p in re.split(r"\n[ \t]*\n", text) if p.strip()]
    lines = [ln.rstrip() for ln in text.split("\n")]
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        return []
    widths = sorted(len(ln) for ln in lines)
    typical = widths[int(len(widths) * 0.75)] if widths else 80
    paras: list[str] = []
    cur: list[str] = []
    size = 0
    for ln in lines:
        cur.append(ln)
        size += len(ln)
        short_end = len(ln) < 0.7 * typical and bool(_SENTENCE_END.search(ln))
        if short_end or size > 1200:
            paras.append("\n".join(cur))
            cur, size = [], 0
    if cur:
        paras.append("\n".join(cur))
    return paras


def _load_pdf(path: Path, source: str) -> Document:
    from pypdf import PdfReader

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoaderError(f"cannot read file: {exc.strerror or exc}") from exc
    if not data.strip():
        return Document(source=source, title=path.stem, format="pdf")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception as exc:
                raise LoaderError(f"encrypted PDF (cannot decrypt: {_one_line(exc)})") from exc
            if not ok:
                raise LoaderError("encrypted PDF (password required)")
        pages = list(reader.pages)
    except LoaderError:
        raise
    except Exception as exc:
        raise LoaderError(f"malformed PDF: {_one_line(exc)}") from exc
    title = ""
    try:
        meta = reader.metadata
        title = _collapse(str(meta.title)) if meta and meta.title else ""
        title = unicodedata.normalize("NFKC", title)
    except Exception:  # metadata is optional and often broken
        title = ""
    title = _PDF_TITLE_SUFFIX.sub("", title)
    if not title or title.lower() in {"untitled", "microsoft word"}:
        title = path.stem
    out = _Sections()
    headings: dict[int, str] = {}  # numbered headings ("8.4.2. Data-processing") by depth

    def crumb() -> list[str]:
        return [title] + [headings[lv] for lv in sorted(headings) if headings[lv] != title]

    for number, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception as exc:  # one bad page does not spoil the document
            log.debug("%s: page %d not extracted: %s", source, number, exc)
            continue
        text = unicodedata.normalize("NFKC", text)  # ligatures (ﬁ) become plain letters
        out.set_crumb(crumb(), page=number)
        body: list[str] = []
        for line in text.split("\n"):
            m = _PDF_HEADING.match(line.strip())
            if m and not _SENTENCE_END.search(line.strip()):
                for para in _pdf_paragraphs("\n".join(body)):
                    out.add("text", para)
                body = []
                depth = m.group(1).rstrip(".").count(".") + 1
                for level in [lv for lv in headings if lv >= depth]:
                    del headings[level]
                headings[depth] = _collapse(line)
                out.set_crumb(crumb(), page=number)
            else:
                body.append(line)
        for para in _pdf_paragraphs("\n".join(body)):
            out.add("text", para)
    return Document(source=source, title=title, format="pdf", sections=out.sections)
