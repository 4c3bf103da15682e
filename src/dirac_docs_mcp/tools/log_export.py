"""``log export``: the query log's questions as training candidates.

One JSONL line per distinct question (``tune generator`` reads this format)::

    {"question": str, "passages": [{"chunk_id": str, "source": str, "text": str}],
     "count": int, "first_seen": str, "last_seen": str}

- Questions are masked first (:mod:`.pii`), then grouped by a key that ignores case,
  whitespace and punctuation; the line keeps the first-seen wording, ``count`` the number of
  logged calls, ``first_seen``/``last_seen`` their UTC times.
- ``passages`` are those of the most recent call of the question that returned any (the one
  the current index most likely still holds), in rank order, each text read from the index
  by chunk id. A chunk no longer in the index (its file re-indexed or removed) is left out
  and counted; a question whose passages are all gone, or whose calls returned none, keeps
  ``passages: []`` (the question alone is still a candidate).
- Lines are in order of first appearance. The file is written beside OUT and renamed into
  place, so OUT is never half-written.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, OutputError
from ..query_log import LogEntry, QueryLog
from ..store import Store
from .pii import PIIMasker

_PUNCTUATION = re.compile(r"[^\w\s]|_")


def question_key(question: str) -> str:
    """Case, whitespace and punctuation do not make a question distinct."""
    return " ".join(_PUNCTUATION.sub(" ", question.casefold()).split())


@dataclass
class _Group:
    question: str
    first_seen: str
    last_seen: str
    count: int = 0
    refs: list[tuple[str, str]] = field(default_factory=list)  # (chunk id, source)
    refs_time: str = ""


@dataclass
class ExportReport:
    files: list[Path]
    calls: int = 0
    questions: int = 0
    bad_lines: int = 0
    passages: int = 0
    passages_missing: int = 0
    without_passages: int = 0
    masked: Counter[str] = field(default_factory=Counter)

    def lines(self, out: Path) -> list[str]:
        masked = ", ".join(f"{n} {kind}" for kind, n in sorted(self.masked.items())) or "nothing"
        return [
            f"read {self.calls} logged calls from {len(self.files)} file(s)"
            + (f" ({self.bad_lines} unreadable lines skipped)" if self.bad_lines else ""),
            f"{self.questions} distinct questions ({self.calls - self.questions} repeats merged) "
            f"-> {out}",
            f"{self.passages} passages; {self.passages_missing} no longer in the index (left "
            f"out); {self.without_passages} questions without passages",
            f"masked: {masked}",
        ]


def group_questions(entries: Iterable[LogEntry], masker: PIIMasker) -> tuple[list[_Group], int]:
    """Distinct masked questions in order of first appearance, and the number of calls."""
    groups: dict[str, _Group] = {}
    calls = 0
    for entry in entries:
        calls += 1
        # a lone surrogate (logged escaped) becomes "?": the export is plain UTF-8
        text = entry.question.encode("utf-8", "replace").decode("utf-8")
        question = masker.mask(" ".join(text.split()))
        key = question_key(question)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(question, entry.time, entry.time)
        group.count += 1
        group.first_seen = min(group.first_seen, entry.time)
        group.last_seen = max(group.last_seen, entry.time)
        if entry.chunk_ids and entry.time >= group.refs_time:
            group.refs = list(zip(entry.chunk_ids, entry.sources, strict=True))
            group.refs_time = entry.time
    return list(groups.values()), calls


class ChunkTexts:
    """Chunk texts by id, read from the index one source document at a time (a document's
    chunks are fetched once however many questions cite it)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._by_source: dict[str, dict[str, str]] = {}

    def text(self, chunk_id: str, source: str) -> str | None:
        if source not in self._by_source:
            self._by_source[source] = {c.id: c.text for c in self._store.chunks_of(source)}
        return self._by_source[source].get(chunk_id)


def export_candidates(
    log: QueryLog, out: Path, store: Store, mask_hosts: Sequence[str] = ()
) -> ExportReport:
    """Write the training candidates of ``log`` to ``out``; see the module docstring."""
    files = log.files()
    if out.resolve() in {f.resolve() for f in files}:
        raise ConfigError(f"{out} is the query log itself; export to another file")
    report = ExportReport(files=files)
    masker = PIIMasker(mask_hosts)
    counts: dict[str, int] = {}
    groups, report.calls = group_questions(log.entries(counts), masker)
    report.bad_lines = counts.get("bad_lines", 0)
    texts = ChunkTexts(store)
    lines = []
    for group in groups:
        passages = []
        seen: set[str] = set()
        for chunk_id, source in group.refs:
            if chunk_id in seen:
                continue
            seen.add(chunk_id)
            text = texts.text(chunk_id, source)
            if text is None:
                report.passages_missing += 1
                continue
            passages.append({"chunk_id": chunk_id, "source": source, "text": text})
        report.passages += len(passages)
        report.without_passages += not passages
        record = {
            "question": group.question,
            "passages": passages,
            "count": group.count,
            "first_seen": group.first_seen,
            "last_seen": group.last_seen,
        }
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    report.questions = len(groups)
    report.masked = masker.counts
    write_atomically(out, "".join(lines))
    return report


def write_atomically(out: Path, text: str) -> None:
    """``text`` into ``out`` through a temporary file in the same folder (private: the
    questions are users' words, even masked)."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"could not write {out}: {exc.strerror or exc}") from None
