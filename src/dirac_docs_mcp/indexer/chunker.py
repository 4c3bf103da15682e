"""Heading-aware, token-bounded chunks with breadcrumb titles and stable ids.

A chunk's :attr:`~dirac_docs_mcp.schemas.Chunk.embed_text` (source path + breadcrumb +
text) fits ``max_tokens`` of the embedding model's tokenizer. Blocks of a section are
packed in order; a block larger than the budget is split (prose on sentences, then
words; code and tables on lines, then characters) with ``overlap_tokens`` of overlap
between its pieces; code and tables that fit are never split. Small sections merge with
following siblings or children, and tiny sections join the chunk before them when it
is their sibling or parent (merged titles are kept as ``## Title`` lines). Every block
is tokenized once and counts are summed; each finished chunk is counted once more as a
check, so the work stays linear in the size of the document.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from ..schemas import Chunk, Document, Section

NAMESPACE = uuid.UUID("6f1c2a7e-3d4b-5c8e-9a0f-d1ac0de5c0de")

_JOIN = "\n\n"  # between blocks of a chunk
_SAFETY = 2  # tokens kept free for tokenization differences at joins
_SENTENCE = re.compile(r"[.!?][\"')\]]*\s+|\n\s*")
_WORD = re.compile(r"\S+\s*")

TokenCounter = Callable[[str], int]


def chunk_id(source: str, position: int) -> str:
    """Stable id of the chunk at ``position`` of ``source``."""
    return str(uuid.uuid5(NAMESPACE, f"{source}#{position}"))


@dataclass
class _Unit:
    text: str
    cost: int  # tokens, without the tokenizer's fixed (special token) overhead


@dataclass
class _Draft:
    crumb: list[str]
    page: int | None
    budget: int  # text tokens allowed
    limit: int  # bound checked on the final embed_text
    parts: list[str] = field(default_factory=list)
    cost: int = 0
    merged: list[list[str]] = field(default_factory=list)  # breadcrumbs of merged sections

    def add(self, text: str, cost: int) -> None:
        self.parts.append(text)
        self.cost += cost


class _Counter:
    """Token counts net of the tokenizer's per-call overhead (e.g. [CLS]/[SEP])."""

    def __init__(self, count_tokens: TokenCounter) -> None:
        self.raw = count_tokens
        self.base = max(0, count_tokens(""))
        self._words: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        return max(0, self.raw(text) - self.base)

    def word(self, text: str) -> int:
        cost = self._words.get(text)
        if cost is None:
            cost = self(text)
            if len(self._words) < 100_000:
                self._words[text] = cost
        return cost


def _header(source: str, crumb: list[str]) -> str:
    return Chunk(id="", source=source, breadcrumb=crumb, text="", position=0).embed_text


# --------------------------------------------------------------------------------------
# splitting one block that is larger than the budget


def _split_units(text: str, kind: str) -> list[str]:
    if kind == "text":
        units: list[str] = []
        start = 0
        for m in _SENTENCE.finditer(text):
            if m.end() > start:
                units.append(text[start : m.end()])
                start = m.end()
        if start < len(text):
            units.append(text[start:])
        return units
    return text.splitlines(keepends=True)


def _split_chars(text: str, cost: int, budget: int, count: _Counter) -> list[_Unit]:
    """Cut a giant unit (no usable boundary) into character windows that fit."""
    out: list[_Unit] = []
    per_token = max(1.0, len(text) / max(cost, 1))
    window = max(1, int(budget * per_token * 0.9))
    pos = 0
    while pos < len(text):
        piece = text[pos : pos + window]
        piece_cost = count(piece)
        while piece_cost > budget and len(piece) > 1:
            piece = piece[: len(piece) // 2]
            piece_cost = count(piece)
        out.append(_Unit(piece, piece_cost))
        pos += len(piece)
    return out


def _fit_units(text: str, kind: str, budget: int, count: _Counter) -> list[_Unit]:
    """Units (sentences/lines, falling back to words/characters) each within budget."""
    out: list[_Unit] = []
    for unit in _split_units(text, kind):
        cost = count(unit)
        if cost <= budget:
            out.append(_Unit(unit, cost))
            continue
        if kind == "text":
            for word in _WORD.findall(unit):
                wcost = count.word(word)
                if wcost <= budget:
                    out.append(_Unit(word, wcost))
                else:
                    out.extend(_split_chars(word, wcost, budget, count))
        else:
            out.extend(_split_chars(unit, cost, budget, count))
    return out


def _overlap(units: list[_Unit], kind: str, overlap: int, count: _Counter) -> list[_Unit]:
    """The trailing units of a piece worth at most ``overlap`` tokens (or the trailing
    words of its last sentence when no whole sentence is that small)."""
    if overlap <= 0 or not units:
        return []
    tail: list[_Unit] = []
    total = 0
    for unit in reversed(units):
        if total + unit.cost > overlap:
            break
        tail.insert(0, unit)
        total += unit.cost
    if tail or kind != "text":
        return tail
    words = _WORD.findall(units[-1].text)
    picked: list[str] = []
    for word in reversed(words):
        wcost = count.word(word)
        if total + wcost > overlap:
            break
        picked.insert(0, word)
        total += wcost
    return [_Unit("".join(picked), total)] if picked else []


def _split_block(
    text: str,
    kind: str,
    budget: int,
    overlap: int,
    count: _Counter,
    first_budget: int | None = None,
) -> list[_Unit]:
    """Pieces of one oversized block, consecutive pieces overlapping by ``overlap`` tokens.

    With ``first_budget`` the first piece is bounded by it instead (it fills the rest of
    the current chunk) and is returned even when empty (nothing fitted there).
    """
    units = _fit_units(text, kind, budget, count)
    limit = budget if first_budget is None else first_budget
    pieces: list[_Unit] = []
    cur: list[_Unit] = []
    fresh = False  # cur holds something beyond the overlap
    total = 0
    for unit in units:
        if not pieces and not cur and unit.cost > limit:
            pieces.append(_Unit("", 0))  # the first slot is too small for the first unit
            limit = budget
        if cur and fresh and total + unit.cost > limit:
            pieces.append(_Unit("".join(u.text for u in cur), total))
            limit = budget
            cur = _overlap(cur, kind, min(overlap, budget // 2), count)
            total = sum(u.cost for u in cur)
            while cur and total + unit.cost > budget:
                total -= cur.pop(0).cost
        cur.append(unit)
        total += unit.cost
        fresh = True
    if cur and fresh:
        pieces.append(_Unit("".join(u.text for u in cur), total))
    out: list[_Unit] = []
    for i, piece in enumerate(pieces):
        body = piece.text.strip() if kind == "text" else piece.text.strip("\n").rstrip()
        if body.strip():
            out.append(_Unit(body, piece.cost))
        elif i == 0 and first_budget is not None:
            out.append(_Unit("", 0))
    if first_budget is not None and not out:
        out.append(_Unit("", 0))
    return out


# --------------------------------------------------------------------------------------
# final check: split a draft whose real count exceeds its limit (rare: join effects)


def _halves(text: str) -> tuple[str, str] | None:
    mid = len(text) // 2
    for sep in ("\n\n", "\n", ". ", " "):
        left = text.rfind(sep, 0, mid + 1)
        right = text.find(sep, mid)
        cands = [i for i in (left, right) if 0 < i < len(text) - len(sep)]
        if cands:
            cut = min(cands, key=lambda i: abs(i - mid)) + len(sep)
            return text[:cut], text[cut:]
    if len(text) > 1:
        return text[:mid], text[mid:]
    return None


def _enforce(text: str, fits: Callable[[str], bool], depth: int = 0) -> list[str]:
    if fits(text) or depth > 30:
        return [text]
    halves = _halves(text)
    if halves is None:
        return [text]
    out: list[str] = []
    for half in halves:
        half = half.strip("\n").rstrip()
        if half.strip():
            out.extend(_enforce(half, fits, depth + 1))
    return out


# --------------------------------------------------------------------------------------


def _common_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _mergeable(draft: _Draft, new: list[str]) -> bool:
    """``new`` is a sibling of the chunk's first section, or inside a section of the chunk."""
    first = draft.crumb
    if len(new) == len(first) and new[:-1] == first[:-1]:
        return True
    return any(new[: len(c)] == c for c in [first, *draft.merged])


def chunk_document(
    doc: Document,
    count_tokens: TokenCounter,
    max_tokens: int = 256,
    overlap_tokens: int = 32,
    min_tokens: int = 48,
) -> list[Chunk]:
    """Split ``doc`` into chunks whose ``embed_text`` fits ``max_tokens`` tokens.

    ``count_tokens`` is the embedding tokenizer's count (special tokens included). When
    the source path and breadcrumb alone leave less than a third of ``max_tokens`` for
    text, the text still gets that third (the embed text may then exceed the bound).
    """
    count = _Counter(count_tokens)
    floor = max(1, max_tokens // 3)
    frames: dict[tuple[str, ...], tuple[int, int]] = {}

    def frame(crumb: list[str]) -> tuple[int, int]:
        """(text budget, limit on count_tokens(embed_text)) for a breadcrumb."""
        key = tuple(crumb)
        if key not in frames:
            head = count.raw(_header(doc.source, crumb))
            budget, limit = max_tokens - head - _SAFETY, max_tokens
            if budget < floor:  # a heading trail that long still leaves a third for text
                budget, limit = floor, head + floor + _SAFETY
            frames[key] = (budget, limit)
        return frames[key]

    def new_draft(section: Section) -> _Draft:
        budget, limit = frame(section.breadcrumb)
        return _Draft(list(section.breadcrumb), section.page, budget, limit)

    drafts: list[_Draft] = []
    acc: _Draft | None = None
    for section in doc.sections:
        blocks = [(b.kind, b.text) for b in section.blocks if b.text.strip()]
        if not blocks:
            continue
        costs = [count(text) for _, text in blocks]
        if (
            acc is not None
            and (acc.cost < min_tokens or sum(costs) < min_tokens)
            and acc.page == section.page
            and _mergeable(acc, section.breadcrumb)
        ):
            last = acc.merged[-1] if acc.merged else acc.crumb
            if section.breadcrumb == last:  # the same section goes on
                rel = []
            else:
                rel = section.breadcrumb[_common_prefix(acc.crumb, section.breadcrumb) :]
            title = ("## " + " › ".join(rel)) if rel else ""
            title_cost = count(title) if title else 0
            if acc.cost + title_cost + sum(costs) <= acc.budget:
                if title:
                    acc.add(title, title_cost)
                for (_, text), cost in zip(blocks, costs, strict=True):
                    acc.add(text, cost)
                acc.merged.append(list(section.breadcrumb))
                continue
        if acc is not None and acc.parts:
            drafts.append(acc)
        acc = new_draft(section)
        for (kind, text), cost in zip(blocks, costs, strict=True):
            if cost > acc.budget:
                room = acc.budget - acc.cost
                fill = room if acc.parts and room >= min(min_tokens, acc.budget // 4) else None
                pieces = _split_block(text, kind, acc.budget, overlap_tokens, count, fill)
                if fill is not None:  # the first piece completes the current chunk
                    first = pieces.pop(0)
                    if first.text:
                        acc.add(first.text, first.cost)
                if acc.parts:
                    drafts.append(acc)
                    acc = new_draft(section)
                for piece in pieces[:-1]:
                    acc.add(piece.text, piece.cost)
                    drafts.append(acc)
                    acc = new_draft(section)
                if pieces:
                    acc.add(pieces[-1].text, pieces[-1].cost)
            elif acc.parts and acc.cost + cost > acc.budget:
                drafts.append(acc)
                acc = new_draft(section)
                acc.add(text, cost)
            else:
                acc.add(text, cost)
    if acc is not None and acc.parts:
        drafts.append(acc)

    chunks: list[Chunk] = []
    for draft in drafts:
        text = _JOIN.join(draft.parts).strip("\n").rstrip()
        if not text.strip():
            continue
        head = _header(doc.source, draft.crumb)

        def fits(candidate: str, head: str = head, limit: int = draft.limit) -> bool:
            return count_tokens(head + candidate) <= limit

        for piece in _enforce(text, fits):
            position = len(chunks)
            chunks.append(
                Chunk(
                    id=chunk_id(doc.source, position),
                    source=doc.source,
                    breadcrumb=draft.crumb,
                    text=piece,
                    position=position,
                    page=draft.page,
                )
            )
    return chunks


def dense_windows(
    chunk: Chunk, counter: Callable[[str], int], split, window_tokens: int, overlap_tokens: int
) -> list[str]:
    """The texts whose embeddings represent ``chunk`` in the dense index.

    A chunk may be longer than the embedding model reads (it is sized for keyword search
    and for reading); its text is cut into windows the model can read whole, each led by
    the chunk's source and breadcrumb, and the chunk scores as its best window (MaxSim).
    ``split(text, max_tokens, overlap)`` cuts on the model tokenizer's token boundaries.
    """
    head = chunk.embed_text[: len(chunk.embed_text) - len(chunk.text)]
    budget = window_tokens - counter(head) - 2  # [CLS]/[SEP]-style specials
    if budget < window_tokens // 4:  # a huge breadcrumb: keep the text, drop the head
        head, budget = "", window_tokens - 2
    return [head + piece for piece in split(chunk.text, budget, min(overlap_tokens, budget // 2))]
