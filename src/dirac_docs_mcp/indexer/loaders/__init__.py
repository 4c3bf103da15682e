"""One loader per source format, each turning a file into a :class:`Document`.

Every loader returns sections (a heading breadcrumb and its blocks in document order);
blocks are prose (``text``), literal/code blocks (``code``, exact text) or tables
(``table``, one row per line, cells joined with ``" | "``). :func:`load_document`
dispatches on the file suffix and turns every failure into a one-line
:class:`~dirac_docs_mcp.errors.LoaderError`.

One module per format: :mod:`.rst`, :mod:`.markdown`, :mod:`.text` (``.txt`` and command
help), :mod:`.cfg`, :mod:`.pdf`; shared helpers in :mod:`.common`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ...errors import LoaderError
from ...schemas import Document
from .cfg import _load_cfg
from .common import _one_line
from .markdown import _load_md
from .pdf import _load_pdf
from .rst import _load_rst
from .text import _load_txt

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: frozenset[str] = frozenset({".rst", ".md", ".txt", ".cfg", ".pdf"})


_LOADERS: dict[str, Callable[[Path, str], Document]] = {
    ".rst": _load_rst,
    ".md": _load_md,
    ".txt": _load_txt,
    ".cfg": _load_cfg,
    ".pdf": _load_pdf,
}


def load_document(path: Path, source: str) -> Document:
    """Parse ``path`` into a :class:`Document` whose ``source`` is ``source``.

    Raises :class:`LoaderError` (one-line message) for unsupported, unreadable or
    malformed files; an empty file gives a document without sections.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    loader = _LOADERS.get(suffix)
    if loader is None:
        raise LoaderError(f"unsupported file type: {suffix or '(no suffix)'}")
    try:
        return loader(path, source)
    except LoaderError:
        raise
    except RecursionError as exc:
        raise LoaderError(f"{suffix[1:]} document nested too deeply to parse") from exc
    except Exception as exc:
        raise LoaderError(
            f"{suffix[1:]} parse failed: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
