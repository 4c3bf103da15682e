"""Training pairs for the retriever that need no generator: pseudo-queries cut from the
indexed chunks themselves, each paired with the chunk it came from.

Kinds (one function each, all pure text work on a :class:`StoredChunk`):

- ``title``: a section's heading (the breadcrumb's last informative parts) -> the chunk's
  text without its breadcrumb head (with it the pair is a string match);
- ``option``: an option's description (a table row with a ``Description`` column, or the
  comment above a ``Key = value`` line of a ``.cfg``) -> the chunk with that description
  cut out but the option's name kept, so the model learns to find a name from what it does
  (the "which option sets ..." questions); the name is left out of the query because BM25
  already matches names;
- ``command``: a command page's synopsis (its first line, "Create a proxy from your user
  certificate") -> the page with the synopsis cut out (its name stays in the head);
- ``crop``: one prose sentence cropped from the chunk -> the chunk around where it stood,
  without it (the inverse cloze task).

Every positive is the chunk as the index embeds it (source path and breadcrumb, then text),
cut to a ~600-character context around where the query came from, so the training and
validation texts stay short (the CPU cost of a step grows with their length).

Questions of a ``generate_qa_pairs`` file (:func:`pairs_from_qa_file`) are the fifth kind,
``qa``. :func:`split_pairs` holds out a seeded share of chunks for validation.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..store import StoredChunk
from ..tools.support import split_sentences

KINDS = ("title", "option", "command", "crop", "qa")
SYNTHETIC_KINDS = ("title", "option", "command", "crop")

#: characters of chunk text kept on each side of the place a query was cut from (about 130
#: MiniLM tokens in all with the head: what the training max_seq_length of 128 reads)
CONTEXT_CHARS = 300
MIN_QUERY_WORDS = 3
MAX_QUERY_WORDS = 40
#: a crop query needs this many words: shorter sentences ("See below.") say nothing
MIN_CROP_WORDS = 6

_SUFFIX = re.compile(r"\s+-\s+(?:sub-)*(?:sub)?section$", re.IGNORECASE)
_TABLE_ROW = re.compile(r"^[^|\n]+(?:\s\|\s[^|\n]*)+$")
_CFG_OPTION = re.compile(r"^\s*([A-Za-z][\w.\-]*)\s*=")
_COMMAND_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)+$|^d[a-z]{2,8}$")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class TrainingPair:
    """One (query, positive passage) pair. ``question`` is the query (named so the
    evaluation-question filter of :mod:`..tools.qa_export` reads it as it reads a Q-A
    pair); ``positive`` is the passage the model must rank first for it."""

    question: str
    positive: str
    chunk_id: str
    source: str
    kind: str


def _words(text: str) -> int:
    return len(_WORD.findall(text))


def head_of(chunk: StoredChunk) -> str:
    """What the indexer puts before a chunk's text when it embeds it (``Chunk.embed_text``)."""
    head = chunk.source
    if chunk.breadcrumb:
        head += "\n" + " › ".join(chunk.breadcrumb)
    return head + "\n\n"


def document_text(chunk: StoredChunk, max_chars: int = 2 * CONTEXT_CHARS) -> str:
    """The chunk as the index embeds it, its text cut to ``max_chars``: a distractor or a
    hard negative in the same form as the positives."""
    return head_of(chunk) + _clip(chunk.text, 0, max_chars)


def _clip(text: str, start: int, end: int) -> str:
    """``text[start:end]`` narrowed to whole words: a cut that falls inside a word moves
    inwards to the next space (a cut at a span's own edge is on a boundary already)."""
    start, end = max(start, 0), min(end, len(text))
    if start > 0 and not text[start - 1].isspace():
        while start < end and not text[start].isspace():
            start += 1
    if end < len(text) and not text[end].isspace():
        while end > start and not text[end - 1].isspace():
            end -= 1
    return text[start:end].strip()


def cut_out(chunk: StoredChunk, start: int, end: int, context: int = CONTEXT_CHARS) -> str:
    """The chunk's head and the text around ``text[start:end]``, that span removed."""
    text = chunk.text
    before = _clip(text, start - context, start)
    after = _clip(text, end, end + context)
    return head_of(chunk) + " ".join(p for p in (before, after) if p)


def _usable_query(text: str, min_words: int = MIN_QUERY_WORDS) -> bool:
    n = _words(text)
    return min_words <= n <= MAX_QUERY_WORDS


# --------------------------------------------------------------------------------------
# kinds
# --------------------------------------------------------------------------------------


def heading_parts(chunk: StoredChunk) -> list[str]:
    """The breadcrumb's headings, flattened and cleaned: ``Systems / WMS / <INSTANCE> /
    Agents / StalledJobAgent - Sub-subsection`` -> ``[Systems, WMS, Agents, StalledJobAgent]``."""
    parts: list[str] = []
    for crumb in chunk.breadcrumb:
        for part in re.split(r"\s+/\s+|\s+›\s+", crumb):
            part = _SUFFIX.sub("", part.strip()).strip()
            if part and not (part.startswith("<") and part.endswith(">")):
                parts.append(part)
    return parts


def title_query(chunk: StoredChunk) -> str | None:
    """The section's own heading, with its parent's when the heading alone is one word
    (``Agents StalledJobAgent``); None for a chunk without headings or a file-name title."""
    parts = [p for p in heading_parts(chunk) if p != Path(chunk.source).name]
    if not parts:
        return None
    query = parts[-1]
    if _words(query) < 2 and len(parts) > 1:
        query = f"{parts[-2]} {query}"
    return query if _words(query) >= 2 else None


def title_pairs(chunk: StoredChunk) -> list[TrainingPair]:
    query = title_query(chunk)
    if query is None or _words(chunk.text) < MIN_CROP_WORDS:
        return []
    positive = _clip(chunk.text, 0, 2 * CONTEXT_CHARS)
    return [TrainingPair(query, positive, chunk.id, chunk.source, "title")]


def _table_options(text: str) -> Iterable[tuple[str, int, int]]:
    """(option name, start, end of its description) for each row of a pipe table whose
    header has a ``Description`` column (how the loaders render rst/md tables)."""
    offset = 0
    columns: list[str] | None = None
    for line in text.split("\n"):
        start_of_line = offset
        offset += len(line) + 1
        if not _TABLE_ROW.match(line):
            columns = None
            continue
        cells = [c.strip() for c in line.split(" | ")]
        if columns is None:
            lowered = [c.lower() for c in cells]
            columns = cells if "description" in lowered else []
            continue
        if not columns or len(cells) != len(columns):
            continue
        where = [c.lower() for c in columns].index("description")
        name, description = cells[0], cells[where]
        if where == 0 or not name or not description:
            continue
        start = line.find(description, len(cells[0]))
        if start < 0:
            continue
        yield name, start_of_line + start, start_of_line + start + len(description)


def _cfg_options(text: str) -> Iterable[tuple[str, int, int]]:
    """(option name, start, end of its comment) for each ``Key = value`` line of a ``.cfg``
    chunk led by ``#`` comment lines (the comment says what the option does)."""
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    for i, line in enumerate(lines):
        match = _CFG_OPTION.match(line)
        if not match:
            continue
        first = i
        while first > 0 and lines[first - 1].lstrip().startswith("#"):
            first -= 1
        if first == i:
            continue
        comment = " ".join(lines[j].lstrip().lstrip("#").strip() for j in range(first, i))
        if "http" in comment or not comment.strip():
            continue  # a "See http://..." pointer, not a description
        yield match.group(1), starts[first], starts[i] - 1


def option_pairs(chunk: StoredChunk) -> list[TrainingPair]:
    found = list(_table_options(chunk.text))
    if chunk.source.endswith(".cfg"):
        found += list(_cfg_options(chunk.text))
    pairs = []
    for _name, start, end in found:
        raw = chunk.text[start:end]
        query = " ".join(raw.replace("#", " ").split()).strip(" .")
        if not _usable_query(query):
            continue
        positive = cut_out(chunk, start, end)
        pairs.append(TrainingPair(query, positive, chunk.id, chunk.source, "option"))
    return pairs


def command_name(chunk: StoredChunk) -> str | None:
    """The command a chunk documents: the first chunk of a file named like a command
    (``dirac-proxy-init.txt``) that shows its usage or sits in a ``commands`` folder."""
    if chunk.position != 0:
        return None
    path = Path(chunk.source)
    name = path.stem
    if not _COMMAND_NAME.match(name):
        return None
    in_commands = "commands" in path.parts[:-1]
    if in_commands or re.search(rf"(?m)^\s*(?:Usage:?\s*)?{re.escape(name)}\b", chunk.text):
        return name
    return None


def command_pairs(chunk: StoredChunk) -> list[TrainingPair]:
    name = command_name(chunk)
    if name is None:
        return []
    text = chunk.text
    first = text.lstrip().split("\n\n", 1)[0]
    start = text.find(first)
    synopsis = " ".join(first.split()).strip(" .")
    if synopsis.lower().startswith(("usage", name)) or not _usable_query(synopsis, 2):
        return []
    positive = cut_out(chunk, start, start + len(first))
    return [TrainingPair(synopsis, positive, chunk.id, chunk.source, "command")]


def _prose_sentences(text: str) -> Iterable[tuple[str, int, int]]:
    """(sentence, start, end) of prose sentences: paragraphs that are not tables, code or
    option lines, a sentence of :data:`MIN_CROP_WORDS` to :data:`MAX_QUERY_WORDS` words
    ending in a full stop (a sentence that ends in ':' introduces a list or code)."""
    for match in re.finditer(r"[^\n]+(?:\n[^\n]+)*", text):
        paragraph = match.group(0)
        lines = paragraph.split("\n")
        if any(_TABLE_ROW.match(x) or _CFG_OPTION.match(x) for x in lines):
            continue
        if any(x.startswith(("    ", "\t", "$ ", "#", ">>>", "-", "*")) for x in lines):
            continue
        for sentence in split_sentences(paragraph):
            if not sentence.endswith((".", "?")):
                continue
            if not MIN_CROP_WORDS <= _words(sentence) <= MAX_QUERY_WORDS:
                continue
            start = text.find(sentence, match.start())
            if start >= 0:
                yield sentence, start, start + len(sentence)


def crop_pairs(chunk: StoredChunk, rng: random.Random) -> list[TrainingPair]:
    """One prose sentence (chosen with ``rng``) as the query; the chunk without it as the
    positive. A chunk of one sentence gives none (nothing would be left)."""
    sentences = list(_prose_sentences(chunk.text))
    if not sentences or _words(chunk.text) < 2 * MIN_CROP_WORDS + _words(sentences[0][0]):
        return []
    sentence, start, end = rng.choice(sentences)
    positive = cut_out(chunk, start, end)
    return [TrainingPair(sentence, positive, chunk.id, chunk.source, "crop")]


# --------------------------------------------------------------------------------------
# all of them
# --------------------------------------------------------------------------------------


def pseudo_queries(
    chunks: Sequence[StoredChunk], kinds: Sequence[str] = SYNTHETIC_KINDS, seed: int = 0
) -> list[TrainingPair]:
    """Every pseudo-query of ``kinds`` from ``chunks``. A query text that several chunks
    give (a heading repeated over a long section, a description shared by two options) is
    kept once, for its first chunk, so no pair asks for two answers."""
    rng = random.Random(seed)
    out: list[TrainingPair] = []
    seen: set[str] = set()
    for chunk in chunks:
        found: list[TrainingPair] = []
        if "title" in kinds:
            found += title_pairs(chunk)
        if "option" in kinds:
            found += option_pairs(chunk)
        if "command" in kinds:
            found += command_pairs(chunk)
        if "crop" in kinds:
            found += crop_pairs(chunk, rng)
        for pair in found:
            key = " ".join(pair.question.lower().split()).strip(" .?!:")
            if key not in seen:
                seen.add(key)
                out.append(pair)
    return out


def pairs_from_qa_file(
    qa_pairs: Iterable, chunks_by_id: dict[str, StoredChunk]
) -> tuple[list[TrainingPair], int]:
    """(pairs, how many named a chunk the index no longer has) from the ``QAPair`` rows of
    a ``generate_qa_pairs`` file that may train (see ``qa_export.training_pairs``)."""
    out, missing = [], 0
    for qa in qa_pairs:
        chunk = chunks_by_id.get(qa.chunk_id)
        if chunk is None:
            missing += 1
            continue
        out.append(TrainingPair(qa.question, document_text(chunk), chunk.id, chunk.source, "qa"))
    return out, missing


def split_pairs(
    pairs: Sequence[TrainingPair], validation_share: float, seed: int
) -> tuple[list[TrainingPair], list[TrainingPair]]:
    """(train, validation): a seeded ``validation_share`` of the chunks, with every pair
    of theirs, is held out, so a validation query's chunk was never a training target."""
    chunk_ids = sorted({p.chunk_id for p in pairs})
    random.Random(seed).shuffle(chunk_ids)
    held = set(chunk_ids[: round(validation_share * len(chunk_ids))])
    train = [p for p in pairs if p.chunk_id not in held]
    validation = [p for p in pairs if p.chunk_id in held]
    return train, validation
