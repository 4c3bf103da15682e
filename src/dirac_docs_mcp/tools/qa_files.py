"""The files of generate_qa_pairs: the append-only pairs JSONL, its resume state, exports.

Crash safety: each micro-batch's lines go to the JSONL in ONE ``write`` on a file opened
for append, then ``fsync``; the set of finished chunks is then replaced atomically in a
sidecar (``<output>.state.json``, write-to-temp + ``os.replace``). A run killed at any
point leaves whole lines (a torn last line, possible only on power loss, is cut off on
the next open) and at worst redoes the batch in flight: chunks whose pairs are already in
the JSONL count as done even if the sidecar missed them. A lock file keeps two runs off
the same output.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError, NotFoundError
from ..schemas import QAExportReport, QAPair

log = logging.getLogger(__name__)

EXPORT_SYSTEM_PROMPT = (
    "You are a support assistant for DIRAC, the grid interware. Answer questions about "
    "DIRAC accurately and concisely."
)


def resolve_tool_output(output_dir: Path, name: str) -> Path:
    """The output file for a tool call: a relative ``.jsonl`` path that stays inside
    ``output_dir`` (no absolute paths, no '..', no symlink leading out)."""
    cleaned = (name or "").strip().replace("\\", "/")
    if not cleaned:
        raise InvalidInputError("output is empty; give a file name such as 'pairs.jsonl'")
    if cleaned.startswith("/") or cleaned.startswith("~") or ".." in cleaned.split("/"):
        raise InvalidInputError(
            f"output must be a path relative to the QA output folder {output_dir}, got {name!r}"
        )
    if not cleaned.endswith(".jsonl"):
        raise InvalidInputError(f"output must end with .jsonl, got {name!r}")
    root = output_dir.resolve()
    target = (root / cleaned).resolve()
    if not target.is_relative_to(root):
        raise InvalidInputError(f"output {name!r} leads outside the QA output folder {root}")
    return target


class PairFile:
    """An append-only JSONL of pairs plus the sidecar of finished chunks."""

    def __init__(self, path: Path):
        self.path = path
        self.state_path = path.with_name(path.name + ".state.json")
        self.lock_path = path.with_name(path.name + ".lock")
        self._lock_fd: int | None = None
        self.pairs: list[QAPair] = []
        self.done: set[str] = set()

    # -- open / close --------------------------------------------------------------------
    def open(self) -> PairFile:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidInputError(f"cannot create {self.path.parent}: {exc}") from None
        if self.path.is_dir():
            raise InvalidInputError(f"output {self.path} is a folder, not a file")
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InvalidInputError(
                f"another run is writing {self.path}; wait for it or choose another output"
            ) from None
        self._lock_fd = fd
        try:
            self._load()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> PairFile:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load(self) -> None:
        if self.path.exists():
            self._cut_torn_tail()
            try:
                self.pairs = read_pairs(self.path)
            except InvalidInputError as exc:
                raise InvalidInputError(
                    f"{exc}; is this file from another tool? Choose another output"
                ) from None
        if self.state_path.exists():
            try:
                self.done = set(json.loads(self.state_path.read_text())["done_chunks"])
            except (ValueError, KeyError, TypeError):
                log.warning("%s is unreadable; resuming from the pairs alone", self.state_path)
        self.done |= {p.chunk_id for p in self.pairs}

    def _cut_torn_tail(self) -> None:
        """Drop a last line without its newline (a write torn by power loss)."""
        size = self.path.stat().st_size
        if not size:
            return
        with self.path.open("rb+") as handle:
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return
            handle.seek(0)
            data = handle.read()
            keep = data.rfind(b"\n") + 1
            log.warning("cutting a torn last line (%d bytes) from %s", size - keep, self.path)
            handle.truncate(keep)

    # -- writing -------------------------------------------------------------------------
    def append_batch(self, pairs: Sequence[QAPair], chunk_ids: Iterable[str]) -> None:
        """Append a batch's pairs in one write + fsync, then record its chunks as done."""
        if pairs:
            data = "".join(p.model_dump_json() + "\n" for p in pairs).encode("utf-8")
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                written = os.write(fd, data)
                while written < len(data):  # regular files write whole; be safe anyway
                    written += os.write(fd, data[written:])
                os.fsync(fd)
            finally:
                os.close(fd)
            self.pairs.extend(pairs)
        self.done |= set(chunk_ids)
        self._save_state()

    def _save_state(self) -> None:
        temp = self.state_path.with_name(self.state_path.name + ".tmp")
        temp.write_text(json.dumps({"done_chunks": sorted(self.done)}))
        os.replace(temp, self.state_path)


# --------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------


def read_pairs(path: Path) -> list[QAPair]:
    """Every pair in a pairs file; a torn last line (no newline) is skipped."""
    if not path.is_file():
        raise NotFoundError(f"no pairs file at {path}")
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            pairs.append(QAPair.model_validate_json(line))
        except ValueError:
            if number == len(lines) and not text.endswith("\n"):
                log.warning("%s: skipping a torn last line", path)
                continue
            raise InvalidInputError(f"{path}:{number} is not a Q-A pair line") from None
    return pairs


def chat_record(pair: QAPair, system_prompt: str = EXPORT_SYSTEM_PROMPT) -> dict[str, Any]:
    """The conversational format TRL's SFTTrainer and ``datasets`` read as is."""
    return {
        "messages": [
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": pair.question},
            {"role": "assistant", "content": pair.answer},
        ]
    }


def split_by_source(
    pairs: Sequence[QAPair], validation_fraction: float, seed: int
) -> tuple[list[QAPair], list[QAPair]]:
    """Whole documents go to one side: sources are shuffled (seeded) and taken for
    validation until it holds about ``validation_fraction`` of the pairs. With two or more
    sources both sides get at least one."""
    if not 0 <= validation_fraction < 1:
        raise InvalidInputError(f"validation fraction must be in [0, 1), got {validation_fraction}")
    by_source: dict[str, list[QAPair]] = defaultdict(list)
    for pair in pairs:
        by_source[pair.source].append(pair)
    sources = sorted(by_source)
    random.Random(seed).shuffle(sources)
    target = validation_fraction * len(pairs)
    validation_sources: list[str] = []
    taken = 0
    for source in sources:
        if taken >= target or len(validation_sources) >= len(sources) - 1:
            break
        validation_sources.append(source)
        taken += len(by_source[source])
    chosen = set(validation_sources)
    train = [p for p in pairs if p.source not in chosen]
    validation = [p for p in pairs if p.source in chosen]
    return train, validation


def _write_jsonl_atomic(path: Path, records: Iterable[dict[str, Any]]) -> None:
    temp = path.with_name(path.name + ".tmp")
    with temp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def export_chat(
    pairs_path: Path,
    out_dir: Path,
    validation_fraction: float = 0.1,
    seed: int = 0,
    system_prompt: str = EXPORT_SYSTEM_PROMPT,
) -> QAExportReport:
    """``train.jsonl`` and ``validation.jsonl`` of chat records, split by source."""
    pairs = read_pairs(pairs_path)
    if not pairs:
        raise InvalidInputError(f"{pairs_path} holds no pairs to export")
    train, validation = split_by_source(pairs, validation_fraction, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_path, validation_path = out_dir / "train.jsonl", out_dir / "validation.jsonl"
    _write_jsonl_atomic(train_path, (chat_record(p, system_prompt) for p in train))
    _write_jsonl_atomic(validation_path, (chat_record(p, system_prompt) for p in validation))
    return QAExportReport(
        train=str(train_path),
        validation=str(validation_path),
        train_pairs=len(train),
        validation_pairs=len(validation),
        train_sources=len({p.source for p in train}),
        validation_sources=len({p.source for p in validation}),
    )


def pair_id(chunk_id: str, question: str) -> str:
    return hashlib.sha256(f"{chunk_id}\n{question}".encode()).hexdigest()[:16]
