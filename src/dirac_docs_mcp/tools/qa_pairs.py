"""generate_qa_pairs: select chunks → generate in micro-batches → gate → de-duplicate → JSONL.

The seed's shelved plan, made reliable: the model's output is constrained by xgrammar to a
JSON array of exactly ``pairs_per_chunk`` ``{"question", "answer"}`` objects with bounded
strings, so every output is finite and parses once finished. What parses is
then gated (:mod:`qa_gates`): schema (a real question, a bounded non-refusal answer), not
about the prompt itself, grounded in its chunk (lexical support), not a near-duplicate of
an earlier question (embedding similarity). Only pairs passing every gate are written
(:mod:`qa_files`: append-only, one write per batch, resumable).
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from ..config import Settings
from ..errors import InvalidInputError
from ..runtime import Runtime
from ..schemas import QACounts, QAPair, QAReport
from ..store import StoredChunk
from .qa_files import PairFile, pair_id
from .qa_gates import (
    ANSWER_MAX_CHARS,
    QUESTION_MAX_CHARS,
    QuestionDeduper,
    about_prompt,
    faithfulness,
    grounding_score,
    schema_problem,
    support_messages,
)
from .qa_kinds import Ask, instruction_words, plan_questions, question_kind, vague_question
from .search import normalize_source_prefix, require_index, retrieve
from .support import echoes

ProgressFn = Callable[[int, int, str], None]

QA_SYSTEM_PROMPT = (
    "You write question-answer pairs for training a DIRAC support assistant. Every question "
    "must be answerable from the passage alone, and every answer must use only facts stated "
    "in the passage."
)
_WORDS = re.compile(r"[A-Za-z]{2,}")
_SENTENCE_END = re.compile(r"[a-z0-9)][.!?:](\s|$)")


@dataclass
class QASelection:
    """Which chunks to generate from. At least one of query / source_prefix / section /
    all_chunks; ``n_chunks`` caps the count (None: the ``qa_n_chunks`` setting); ``seed``
    fixes the sample (not the query's ranking, which is already deterministic)."""

    query: str | None = None
    source_prefix: str | None = None
    section: str | None = None
    all_chunks: bool = False
    n_chunks: int | None = None
    seed: int = 0

    def with_defaults(self, settings: Settings) -> QASelection:
        return self if self.n_chunks is not None else replace(self, n_chunks=settings.qa_n_chunks)


def content_free_reason(text: str, min_words: int) -> str | None:
    """Why a chunk has nothing to ask about (too few words, a list of links or titles such as
    a toctree), or None."""
    words = _WORDS.findall(text)
    if len(words) < min_words:
        return "too small"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "empty"
    links = sum(1 for line in lines if "http://" in line or "https://" in line)
    short = sum(
        1
        for line in lines
        if len(_WORDS.findall(line)) <= 6 and not line.endswith((".", ":", "?", ")"))
    )
    sentences = len(_SENTENCE_END.findall(text))
    if links / len(lines) >= 0.5 and sentences < 3:
        return "a list of links"
    if short / len(lines) >= 0.8 and sentences < 2:
        return "a list of titles"
    return None


def select_chunks(runtime: Runtime, selection: QASelection) -> tuple[list[StoredChunk], int]:
    """(chunks to use, number skipped as content-free)."""
    settings = runtime.settings
    selection = selection.with_defaults(settings)
    if not (selection.query or selection.source_prefix or selection.section) and not (
        selection.all_chunks
    ):
        raise InvalidInputError(
            "choose chunks: give a query, a source prefix, a section, or ask for all chunks"
        )
    if not 1 <= selection.n_chunks <= settings.qa_max_chunks:
        raise InvalidInputError(
            f"n_chunks must be between 1 and {settings.qa_max_chunks}, got {selection.n_chunks}"
        )
    prefix = normalize_source_prefix(selection.source_prefix)
    section = " ".join((selection.section or "").split()).lower() or None
    store = require_index(runtime)
    min_words = settings.qa_min_chunk_words
    if selection.query:
        wanted = min(2 * selection.n_chunks, 2 * settings.qa_max_chunks)
        ranked = retrieve(
            runtime,
            selection.query,
            wanted,
            section=selection.section,
            source_prefix=prefix,
            max_limit=2 * settings.qa_max_chunks,
        )
        usable = [c for c in ranked if content_free_reason(c.text, min_words) is None]
        return usable[: selection.n_chunks], len(ranked) - len(usable)
    candidates: list[StoredChunk] = []
    for source in sorted(store.manifest()):
        if prefix and not (source == prefix or source.startswith(prefix.rstrip("/") + "/")):
            continue
        for chunk in store.chunks_of(source):
            if section and section not in chunk.section.lower():
                continue
            candidates.append(chunk)
    usable = [c for c in candidates if content_free_reason(c.text, min_words) is None]
    skipped = len(candidates) - len(usable)
    if len(usable) > selection.n_chunks:
        usable = random.Random(selection.seed).sample(usable, selection.n_chunks)
        usable.sort(key=lambda c: (c.source, c.position))
    return usable, skipped


def qa_schema(pairs: int) -> dict:
    """Exactly ``pairs`` objects, question before answer (xgrammar keeps key order), both
    strings bounded so that a model stuck in a loop still closes its JSON.

    No ``pattern`` forcing the final '?': xgrammar 0.2.8 drops maxLength when a pattern is
    given, and an unbounded question is where a 4-bit 135M model looped past the token cap
    (2-4 of 8 outputs unfinished on CUDA NF4); the '?' is checked by the schema gate."""
    return {
        "type": "array",
        "minItems": pairs,
        "maxItems": pairs,
        "items": {
            "type": "object",
            "properties": {
                "question": {"type": "string", "minLength": 8, "maxLength": QUESTION_MAX_CHARS},
                "answer": {"type": "string", "minLength": 2, "maxLength": ANSWER_MAX_CHARS},
            },
            "required": ["question", "answer"],
            "additionalProperties": False,
        },
    }


# passage characters in a retried row's prompt (the first try sends up to 2400)
RETRY_MAX_CHARS = 1200


def qa_messages(
    chunk: StoredChunk, pairs: int, max_chars: int = 2400, asks: list[Ask] | None = None
) -> list[dict]:
    """The generation prompt. ``asks`` (one per pair, :func:`qa_kinds.plan_questions`) says
    what each question must be; without it the model chooses."""
    text = chunk.text if len(chunk.text) <= max_chars else chunk.text[:max_chars] + "…"
    where = chunk.source + (f", page {chunk.page}" if chunk.page else "")
    plural = "questions" if pairs > 1 else "question"
    if asks:
        wanted = " ".join(f"Question {i}: {a.instruction}." for i, a in enumerate(asks, 1))
        what = f"Write {pairs} {plural} that a DIRAC user or administrator could ask and that "
        what += f"this passage answers, each with its answer. {wanted} "
        if pairs > 1:
            what += "Each question asks something different. "
    else:
        what = (
            f"Write {pairs} different {plural} that a DIRAC user or administrator could ask "
            "and that this passage answers, each with its answer. Ask about facts the passage "
            "states (what a component, command or option does, a default value, a step, a "
            "requirement). "
        )
    user = (
        f"Passage from {where}, section {chunk.section!r}:\n\n{text}\n\n"
        + what
        + "Never ask about anything the passage does not state. A question names what it is "
        "about (never 'it', 'this agent' or 'the passage') so that it makes sense without the "
        "passage, and ends with a question mark. An answer is one or two sentences that reuse "
        "the passage's own words and its exact names, values and commands; add nothing the "
        "passage does not say. Never ask about the passage itself."
    )
    return [{"role": "system", "content": QA_SYSTEM_PROMPT}, {"role": "user", "content": user}]


def roundtrip_rank(runtime: Runtime, question: str, chunk_id: str, k: int) -> int | None:
    """The 1-based rank of ``chunk_id`` when ``question`` is searched with the project's
    retrieval (top ``k``), or None when it is not among them."""
    for rank, found in enumerate(retrieve(runtime, question, k, max_limit=max(k, 50)), 1):
        if found.id == chunk_id:
            return rank
    return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def generate_qa_pairs(
    runtime: Runtime,
    selection: QASelection,
    output: Path,
    pairs_per_chunk: int | None = None,
    batch_size: int | None = None,
    cancel: threading.Event | None = None,
    on_progress: ProgressFn | None = None,
    n_samples: int = 3,
) -> QAReport:
    """Generate, gate and append pairs for the selected chunks to ``output`` (JSONL).

    Chunks already done in ``output`` are skipped (resume). ``cancel`` stops after the
    batch in flight, which is dropped; everything written before stays."""
    settings = runtime.settings
    selection = selection.with_defaults(settings)
    pairs_per_chunk = pairs_per_chunk or settings.qa_pairs_per_chunk
    batch_size = batch_size or settings.qa_batch_size
    if not 1 <= pairs_per_chunk <= 5:
        raise InvalidInputError(f"pairs_per_chunk must be between 1 and 5, got {pairs_per_chunk}")
    if not 1 <= batch_size <= 32:
        raise InvalidInputError(f"batch_size must be between 1 and 32, got {batch_size}")
    started = time.perf_counter()
    chunks, content_free = select_chunks(runtime, selection)
    counts = QACounts(chunks_selected=len(chunks), chunks_content_free=content_free)
    rejections: Counter[str] = Counter()
    written: list[QAPair] = []
    cancelled = False
    max_new_tokens = pairs_per_chunk * settings.qa_tokens_per_pair + 8
    run_settings = {
        "pairs_per_chunk": pairs_per_chunk,
        "max_new_tokens": max_new_tokens,
        "decoding": "greedy",
        "constrained": "json-schema",
        "batch_size": batch_size,
        "min_grounding": settings.qa_min_grounding,
        "max_question_similarity": settings.qa_max_question_similarity,
        "max_missing_specifics": settings.qa_max_missing_specifics,
        "min_window_share": settings.qa_min_window_share,
        "min_phrase_share": settings.qa_min_phrase_share,
        "min_anchored_share": settings.qa_min_anchored_share,
        "judge_model": settings.qa_judge_model,
        "min_p_supported": settings.qa_min_p_supported,
        "roundtrip_k": settings.qa_roundtrip_k,
        "roundtrip_drop": settings.qa_roundtrip_drop,
        "keep_rejected": settings.qa_keep_rejected,
        "kinds": "per chunk (qa_kinds.plan_questions)",
        "selection": asdict(selection),
    }

    with PairFile(output) as pair_file:
        todo = [c for c in chunks if c.id not in pair_file.done]
        counts.chunks_skipped_done = len(chunks) - len(todo)
        dense = runtime.encoders.dense if todo else None
        deduper = QuestionDeduper(settings.qa_max_question_similarity)
        written_ids = {p.id for p in pair_file.pairs}
        if dense is not None and pair_file.pairs:
            questions = [p.question for p in pair_file.pairs]
            for question, vector in zip(questions, dense.embed_documents(questions), strict=True):
                deduper.add(question, vector)
        generator = runtime.generator(settings.qa_generator_model) if todo else None
        judge = None
        if todo and settings.qa_judge_model:
            judge = runtime.generator(settings.qa_judge_model)
        schema = qa_schema(pairs_per_chunk)
        if on_progress is not None:
            on_progress(0, len(todo), f"{len(todo)} chunks to do")
        for first in range(0, len(todo), batch_size):
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            batch = todo[first : first + batch_size]
            assert generator is not None and dense is not None
            plans = [plan_questions(c.text, pairs_per_chunk, c.section) for c in batch]
            results = generator.generate_batch(
                [
                    qa_messages(c, pairs_per_chunk, asks=plan)
                    for c, plan in zip(batch, plans, strict=True)
                ],
                max_new_tokens=max_new_tokens,
                json_schema=schema,
                timeout_s=settings.generator_timeout_s * len(batch),
                cancel=cancel,
            )
            if cancel is not None and cancel.is_set():
                cancelled = True  # the batch in flight is incomplete: drop it, redo on resume
                break
            # a row whose JSON did not close (a small model looping until the token cap) is
            # retried once, shorter passage and 1.5x the budget, before it counts as failed
            failed_rows = [
                i for i, r in enumerate(results) if r.error or not isinstance(r.data, list)
            ]
            if failed_rows:
                counts.retried += len(failed_rows)
                again = generator.generate_batch(
                    [
                        qa_messages(batch[i], pairs_per_chunk, RETRY_MAX_CHARS, plans[i])
                        for i in failed_rows
                    ],
                    max_new_tokens=max_new_tokens * 3 // 2,
                    json_schema=schema,
                    timeout_s=settings.generator_timeout_s * len(failed_rows),
                    cancel=cancel,
                )
                if cancel is not None and cancel.is_set():
                    cancelled = True
                    break
                for i, result in zip(failed_rows, again, strict=True):
                    results[i] = result
            candidates: list[tuple[StoredChunk, QAPair]] = []
            for chunk, result, plan in zip(batch, results, plans, strict=True):
                counts.chunks_processed += 1
                counts.repaired += int(result.repairs > 0)
                if result.error or not isinstance(result.data, list):
                    counts.failed += 1
                    continue
                for index, item in enumerate(result.data):
                    counts.generated += 1
                    question = " ".join(str((item or {}).get("question", "")).split())
                    answer = " ".join(str((item or {}).get("answer", "")).split())
                    problem = schema_problem(question, answer)
                    if problem is not None:
                        rejections[problem] += 1
                        continue
                    if about_prompt(question, answer) or echoes(question, instruction_words()):
                        counts.about_prompt += 1
                        continue
                    if vague_question(question):
                        counts.vague += 1
                        continue
                    counts.valid += 1
                    context = f"{chunk.section}\n{chunk.source}"
                    score = grounding_score(answer, f"{chunk.section}\n{chunk.text}")
                    grounded = score >= settings.qa_min_grounding
                    faith = faithfulness(question, answer, chunk.text, context)
                    p_supported = None
                    if judge is not None and grounded:
                        p_supported = judge.yes_probability(
                            support_messages(question, answer, chunk.text)
                        )
                    faithful = faith.passes(
                        settings.qa_max_missing_specifics,
                        settings.qa_min_window_share,
                        settings.qa_min_phrase_share,
                        settings.qa_min_anchored_share,
                    ) and (p_supported is None or p_supported >= settings.qa_min_p_supported)
                    counts.grounded += int(grounded)
                    counts.faithful += int(grounded and faithful)
                    if not (grounded and faithful) and not settings.qa_keep_rejected:
                        continue
                    asked = plan[index].kind if index < len(plan) else None
                    pair = QAPair(
                        id=pair_id(chunk.id, question),
                        question=question,
                        answer=answer,
                        source=chunk.source,
                        section=chunk.section,
                        chunk_id=chunk.id,
                        page=chunk.page,
                        grounding=round(score, 3),
                        model=generator.model_id,
                        settings=run_settings,
                        created=_now(),
                        kind=question_kind(question, asked),
                        asked_kind=asked,
                        specifics_missing=faith.missing,
                        window_share=round(faith.window_share, 3),
                        phrase_share=round(faith.phrase_share, 3),
                        anchored_share=round(faith.anchored_share, 3),
                        p_supported=None if p_supported is None else round(p_supported, 4),
                        faithful=faithful,
                        kept=grounded and faithful,
                    )
                    candidates.append((chunk, pair))
            vectors = (
                dense.embed_documents([c[1].question for c in candidates]) if candidates else []
            )
            fresh: list[QAPair] = []
            k = settings.qa_roundtrip_k
            for (chunk, pair), vector in zip(candidates, vectors, strict=True):
                if pair.id in written_ids or pair.id in {p.id for p in fresh}:
                    counts.duplicates += 1  # the same question on the same chunk again
                    continue
                if pair.kept:
                    # only pairs passing the gates so far take part in de-duplication, so a
                    # keep-rejected run keeps the same pairs as a normal one
                    if deduper.is_duplicate(pair.question, vector):
                        counts.duplicates += 1
                        continue
                    deduper.add(pair.question, vector)
                pair.roundtrip_k = k
                pair.roundtrip_rank = roundtrip_rank(runtime, pair.question, chunk.id, k)
                if pair.kept and pair.roundtrip_rank is not None:
                    counts.roundtrip += 1
                elif pair.kept and settings.qa_roundtrip_drop:
                    pair.kept = False
                if not pair.kept and not settings.qa_keep_rejected:
                    continue
                fresh.append(pair)
            pair_file.append_batch(fresh, [c.id for c in batch])
            counts.written += len(fresh)
            written_ids.update(p.id for p in fresh)
            for pair in fresh:
                if pair.kept:
                    counts.kinds[pair.kind or "other"] = (
                        counts.kinds.get(pair.kind or "other", 0) + 1
                    )
            written.extend(fresh)
            if on_progress is not None:
                done = min(first + batch_size, len(todo))
                on_progress(done, len(todo), f"{done}/{len(todo)} chunks, {counts.written} pairs")
    seconds = time.perf_counter() - started
    kept = [p for p in written if p.kept]
    sample = random.Random(selection.seed).sample(kept, min(n_samples, len(kept)))
    return QAReport(
        output=str(output),
        model=generator.model_id if generator is not None else settings.generator_model,
        counts=counts,
        cancelled=cancelled,
        seconds=round(seconds, 2),
        pairs_per_minute=round(60 * counts.written / seconds, 2) if seconds > 0 else 0.0,
        rejections=dict(rejections),
        samples=sample,
    )


def format_report(report: QAReport) -> str:
    c = report.counts
    lines = [
        f"{c.written} pairs written to {report.output}"
        + (" (cancelled; what was done is kept)" if report.cancelled else ""),
        f"chunks: {c.chunks_selected} selected, {c.chunks_skipped_done} already done, "
        f"{c.chunks_content_free} content-free skipped, {c.chunks_processed} processed, "
        f"{c.retried} retried, {c.failed} failed",
        f"pairs: {c.generated} generated, {c.valid} valid, {c.grounded} grounded, "
        f"{c.faithful} faithful, {c.duplicates} duplicates dropped, {c.roundtrip} found by "
        f"their question, {c.about_prompt} about the prompt, {c.vague} vague",
        "kinds: " + (", ".join(f"{k} {v}" for k, v in sorted(c.kinds.items())) or "none"),
        f"{report.seconds:.1f} s, {report.pairs_per_minute:.1f} pairs/min, model {report.model}",
    ]
    for pair in report.samples:
        lines.append(f"\nQ: {pair.question}\nA: {pair.answer}\n   ({pair.source} — {pair.section})")
    return "\n".join(lines)
