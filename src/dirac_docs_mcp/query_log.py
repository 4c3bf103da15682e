"""The opt-in query log: one JSONL line per ``search_dirac_docs`` / ``answer_question`` call.

Off unless ``query_log`` (``DIRAC_MCP_QUERY_LOG``) names a file. A line holds exactly::

    {"time": "2025-06-01T12:00:00.123Z", "tool": "answer_question", "question": "...",
     "chunk_ids": ["..."], "sources": ["..."], "answered": false}

(``answered`` is null for a search; chunk ids and sources are the returned passages in rank
order.) No client, session, answer text or filter is written. A call that fails (a tool
error) writes nothing.

Several processes (stdio servers, an HTTP server's sessions) may append to one file at once:
each line is one ``os.write`` of the whole line to an ``O_APPEND`` descriptor while holding
``flock`` on the file, and rotation happens under that same lock. A writer that waited for
the lock while another rotated the file finds that its descriptor no longer names the file
at the path, and opens the new one. A failed write never fails the tool call: it is logged
once as a warning (stderr) and the call goes on.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import Settings
from .schemas import SearchHit

log = logging.getLogger(__name__)

#: the tools whose calls are logged
LOGGED_TOOLS = ("search_dirac_docs", "answer_question")
#: every key of a line, nothing else
FIELDS = ("time", "tool", "question", "chunk_ids", "sources", "answered")
#: a writer retries this often when the file is rotated under it (each retry is one rename
#: by another process; 100 in a row would mean something renames it in a loop)
_MAX_REOPENS = 100


@dataclass(frozen=True)
class LogEntry:
    """One parsed line."""

    time: str
    tool: str
    question: str
    chunk_ids: list[str]
    sources: list[str]
    answered: bool | None


def utc_now() -> str:
    """UTC time, ISO 8601 with milliseconds and a Z: lines sort by it as strings."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def entry_line(
    tool: str, question: str, hits: Sequence[SearchHit], answered: bool | None, time: str
) -> bytes:
    """The line for one call. ASCII-escaped JSON: a lone surrogate in a question cannot make
    the write fail, and any JSON reader gets the text back."""
    record = {
        "time": time,
        "tool": tool,
        "question": question,
        "chunk_ids": [h.chunk_id for h in hits],
        "sources": [h.source for h in hits],
        "answered": answered,
    }
    return (json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")


class QueryLog:
    """Appends lines to ``path``, rotating it to ``path.1`` … ``path.<rotated>`` by size."""

    def __init__(self, path: Path, max_bytes: int, rotated: int = 1) -> None:
        if max_bytes < 1 or rotated < 1:
            raise ValueError("max_bytes and rotated must be positive")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.rotated = rotated
        self._warned = False

    @classmethod
    def from_settings(cls, settings: Settings) -> QueryLog | None:
        """The configured log, or None when ``query_log`` is unset (the default)."""
        if settings.query_log is None:
            return None
        return cls(
            settings.query_log, settings.query_log_max_bytes, settings.query_log_rotated_files
        )

    # --- writing ---------------------------------------------------------------------------
    def record(
        self, tool: str, question: str, hits: Sequence[SearchHit], answered: bool | None
    ) -> bool:
        """Append one call's line; False (and one warning per log) when it could not be
        written. Never raises: the tool call it records must not fail because of it."""
        try:
            self.append(entry_line(tool, question, hits, answered, utc_now()))
            return True
        except Exception as exc:  # any failure at all: the log is best effort
            if not self._warned:
                self._warned = True
                log.warning(
                    "query log %s: could not append (%s); calls go on unlogged, this warning "
                    "is not repeated",
                    self.path,
                    exc,
                )
            return False

    def append(self, data: bytes) -> None:
        """Append ``data`` (whole lines) under the file's lock, rotating first if it would
        pass ``max_bytes``. A file holds at most ``max_bytes``, or one line when a single
        line is larger."""
        for _ in range(_MAX_REOPENS):
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                held = os.fstat(fd)
                try:
                    current = os.stat(self.path)
                except FileNotFoundError:  # rotated or purged while we waited for the lock
                    continue
                if (held.st_dev, held.st_ino) != (current.st_dev, current.st_ino):
                    continue  # rotated while we waited: append to the new file instead
                if held.st_size and held.st_size + len(data) > self.max_bytes:
                    self._rotate()
                    continue
                self._write_all_or_nothing(fd, data, held.st_size)
                return
            finally:
                os.close(fd)  # releases the lock
        raise OSError(f"{self.path} was rotated under this writer {_MAX_REOPENS} times in a row")

    @staticmethod
    def _write_all_or_nothing(fd: int, data: bytes, size_before: int) -> None:
        """One write of the whole line; a short or failed write (disk full) is cut back so
        the file never holds half a line."""
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write: {written} of {len(data)} bytes (disk full?)")
        except OSError:
            try:
                os.ftruncate(fd, size_before)
            except OSError:
                pass
            raise

    def _rotate(self) -> None:
        """path.(k-1) → path.k … path → path.1; the oldest beyond ``rotated`` is replaced.
        Called with the lock on ``path`` held."""
        for n in range(self.rotated - 1, 0, -1):
            older = self.rotated_path(n)
            if older.exists():
                os.replace(older, self.rotated_path(n + 1))
        os.replace(self.path, self.rotated_path(1))

    # --- reading and removing --------------------------------------------------------------
    def rotated_path(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def files(self) -> list[Path]:
        """The log's files that exist, oldest first: path.N … path.1, then path. Rotated
        files beyond the ``rotated`` setting (left by a larger earlier setting) count too."""
        pattern = re.compile(re.escape(self.path.name) + r"\.(\d+)")
        numbered: list[tuple[int, Path]] = []
        try:
            for child in self.path.parent.iterdir():
                match = pattern.fullmatch(child.name)
                if match and child.is_file():
                    numbered.append((int(match.group(1)), child))
        except OSError:
            pass
        files = [p for _, p in sorted(numbered, reverse=True)]
        if self.path.is_file():
            files.append(self.path)
        return files

    def entries(self, counts: dict[str, int] | None = None) -> Iterator[LogEntry]:
        """Every well-formed line, oldest first; ``counts["bad_lines"]`` counts the others
        (a line from another program, a file edited by hand)."""
        for path in self.files():
            with path.open("rb") as f:
                for raw in f:
                    entry = parse_line(raw)
                    if entry is None:
                        if counts is not None and raw.strip():
                            counts["bad_lines"] = counts.get("bad_lines", 0) + 1
                        continue
                    yield entry

    def purge(self) -> list[Path]:
        """Delete the log and its rotated files; returns what was removed. Done under the
        log's lock, so a writer in the middle of a line finishes it first and the next one
        starts a new file."""
        removed: list[Path] = []
        fd = None
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except FileNotFoundError:
            pass
        try:
            for path in self.files():
                path.unlink()
                removed.append(path)
        finally:
            if fd is not None:
                os.close(fd)
        return removed


def parse_line(raw: bytes) -> LogEntry | None:
    """A line back into a :class:`LogEntry`, or None when it is not one of ours."""
    try:
        data: Any = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or set(data) != set(FIELDS):
        return None
    ids, sources = data["chunk_ids"], data["sources"]
    if not (
        isinstance(data["time"], str)
        and data["tool"] in LOGGED_TOOLS
        and isinstance(data["question"], str)
        and isinstance(ids, list)
        and isinstance(sources, list)
        and len(ids) == len(sources)
        and all(isinstance(x, str) for x in ids + sources)
        and (data["answered"] is None or isinstance(data["answered"], bool))
    ):
        return None
    return LogEntry(data["time"], data["tool"], data["question"], ids, sources, data["answered"])
