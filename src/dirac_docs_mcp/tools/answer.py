"""answer_question: retrieve → numbered passages → constrained generation → cite, or abstain.

Abstention uses two signals (a ``supported`` field in the JSON schema alone never made the
models abstain when they were surveyed: they fill it ``true`` by habit):
- retrieval support: the best dense similarity between the question and any chunk window;
  below ``answer_min_support`` nothing in the docs is about the question;
- the generator's probability that the passages answer the question (the mass on "yes"
  to a separate judge prompt), below ``answer_min_p_answerable``;
- optionally (``answer_model_may_abstain``) the answer model saying "I don't know"; off by
  default because the 0.5B says it about as often when the answer is there as when it is not.
Citations are constrained to the passage numbers that were in the prompt, so no answer can
cite a passage it was not given.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

from ..errors import GenerationError, InvalidInputError
from ..runtime import Runtime
from ..schemas import Answer, Citation, SearchHit
from .search import retrieve, to_hits
from .text_rules import NO_ANSWER

SYSTEM_PROMPT = (
    "You are a support assistant for DIRAC, the grid interware. Answer ONLY from the numbered "
    "passages. Cite the passages you use as [1], [2]. Never invent commands or options."
)
UNKNOWN_RULE = " If the passages do not contain the answer, say: I don't know."

_MARKER = re.compile(r"\[(\d{1,2})\]")


def answer_schema(n_passages: int, max_answer_chars: int = 1200) -> dict:
    """The answer first, then the passage numbers it used (only those in the prompt).

    No "answerable" flag: small models fill it with ``true`` by habit and, asked for it
    first, even copy ``true`` into the answer; abstention comes from the answer text ("I
    don't know") and from the separate yes/no probability."""
    return {
        "type": "object",
        "properties": {
            "answer": {"type": "string", "maxLength": max_answer_chars},
            "citations": {
                "type": "array",
                "items": {"type": "integer", "enum": list(range(1, n_passages + 1))},
            },
        },
        "required": ["answer", "citations"],
        "additionalProperties": False,
    }


def build_messages(
    question: str,
    hits: list[SearchHit],
    max_chars_per_passage: int,
    model_may_abstain: bool = False,
) -> list[dict]:
    """The answer prompt. ``model_may_abstain`` adds the "say I don't know" rule; without it
    abstention is left to the judge (see ``answer_model_may_abstain``)."""
    blocks = []
    for h in hits:
        text = (
            h.text if len(h.text) <= max_chars_per_passage else h.text[:max_chars_per_passage] + "…"
        )
        where = h.source + (f", page {h.page}" if h.page else "")
        blocks.append(f"[{h.rank}] {h.section} ({where})\n{text}")
    user = (
        "Passages:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}\n\n"
        "Answer in one to three sentences, citing passages as [n]."
    )
    system = SYSTEM_PROMPT
    if model_may_abstain:
        system += UNKNOWN_RULE
        user += " If the passages do not contain the answer, answer exactly: I don't know."
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def judge_messages(question: str, messages: list[dict]) -> list[dict]:
    """Ask whether the passages answer the question; its yes-probability gates answering."""
    user = messages[-1]["content"].split("\n\nQuestion:")[0]
    return [
        {"role": "system", "content": "You judge whether passages answer a question."},
        {
            "role": "user",
            "content": f"{user}\n\nQuestion: {question}\n\nDo these passages contain the "
            "answer to the question? Answer yes or no.",
        },
    ]


def cited_numbers(answer: str, declared: list[int], n_passages: int) -> list[int]:
    """Citations actually usable: [n] markers in the text plus declared ones, in range."""
    found = [int(m) for m in _MARKER.findall(answer)] + list(declared or [])
    seen: list[int] = []
    for n in found:
        if 1 <= n <= n_passages and n not in seen:
            seen.append(n)
    return seen


def strip_bad_markers(answer: str, n_passages: int) -> str:
    return _MARKER.sub(lambda m: m.group(0) if 1 <= int(m.group(1)) <= n_passages else "", answer)


def says_unknown(answer: str) -> bool:
    return bool(NO_ANSWER.search(answer or "")) or not (answer or "").strip()


def answer_question(
    runtime: Runtime,
    question: str,
    limit: int | None = None,
    cancel: threading.Event | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Answer:
    settings = runtime.settings
    limit = settings.answer_passages if limit is None else limit
    if not 1 <= limit <= settings.answer_max_passages:
        raise InvalidInputError(
            f"limit must be between 1 and {settings.answer_max_passages}, got {limit}"
        )
    timings: dict[str, float] = {}
    started = time.perf_counter()
    chunks = retrieve(runtime, question, limit)
    support = runtime.best_dense_similarity(question)
    hits, _ = to_hits(chunks, settings.max_result_chars)
    timings["retrieval_s"] = round(time.perf_counter() - started, 4)

    def abstain(reason: str, **extra) -> Answer:
        timings["total_s"] = round(time.perf_counter() - started, 4)
        return Answer(
            question=question,
            answered=False,
            answer="I don't know: " + reason,
            reason=reason,
            passages=hits,
            support=support,
            timings=timings,
            **extra,
        )

    if not hits:
        return abstain("the index has no passage for this question")
    if support is not None and support < settings.answer_min_support:
        return abstain(
            f"no passage is close to the question (best similarity {support:.2f} < "
            f"{settings.answer_min_support:.2f})"
        )

    t0 = time.perf_counter()
    generator = runtime.generator()
    timings["generator_load_s"] = round(time.perf_counter() - t0, 4)
    messages = build_messages(
        question, hits, settings.answer_max_chars_per_passage, settings.answer_model_may_abstain
    )

    p_answerable = None
    if settings.answer_min_p_answerable > 0:
        t0 = time.perf_counter()
        judge = generator
        if settings.answer_judge_model and settings.answer_judge_model != settings.generator_model:
            judge = runtime.generator(settings.answer_judge_model)
        p_answerable = judge.yes_probability(judge_messages(question, messages))
        timings["judge_s"] = round(time.perf_counter() - t0, 4)
        if p_answerable < settings.answer_min_p_answerable:
            return abstain(
                f"the passages do not seem to answer it (p={p_answerable:.2f})",
                model=generator.model_id,
                p_answerable=p_answerable,
            )

    budget = settings.generator_max_new_tokens
    try:
        generation = generator.generate(
            messages,
            max_new_tokens=budget,
            # ~3 characters a token, leaving room for the citations and the JSON around it,
            # so the JSON closes before the token cap
            json_schema=answer_schema(len(hits), max(40, 3 * (budget - 24))),
            timeout_s=settings.generator_timeout_s,
            cancel=cancel,
            on_progress=on_progress,
        )
    except GenerationError as exc:
        return abstain(f"the model gave no complete answer ({exc})", model=generator.model_id)
    timings.update(
        generation_s=round(generation.seconds, 4),
        ttft_s=round(generation.ttft_s or 0.0, 4),
        new_tokens=float(generation.new_tokens),
        prompt_tokens=float(generation.prompt_tokens),
        tokens_per_s=round(generation.tokens_per_s, 2),
    )
    data = generation.data or {}
    text = strip_bad_markers(str(data.get("answer", "")).strip(), len(hits))
    if generation.finish_reason == "cancelled":
        return abstain("cancelled", model=generator.model_id, p_answerable=p_answerable)
    if says_unknown(text):
        return abstain(
            "the passages do not contain the answer",
            model=generator.model_id,
            p_answerable=p_answerable,
        )
    numbers = cited_numbers(text, data.get("citations", []), len(hits))
    by_rank = {h.rank: h for h in hits}
    citations = [
        Citation(
            n=n,
            source=by_rank[n].source,
            section=by_rank[n].section,
            chunk_id=by_rank[n].chunk_id,
            link=by_rank[n].link,
            page=by_rank[n].page,
        )
        for n in numbers
    ]
    timings["total_s"] = round(time.perf_counter() - started, 4)
    return Answer(
        question=question,
        answered=True,
        answer=text,
        citations=citations,
        passages=hits,
        model=generator.model_id,
        support=support,
        p_answerable=p_answerable,
        timings=timings,
    )


def format_answer(answer: Answer) -> str:
    lines = [answer.answer]
    if answer.citations:
        lines.append("")
        lines += [f"[{c.n}] {c.section or c.source} — {c.link}" for c in answer.citations]
    elif not answer.answered and answer.passages:
        lines.append("\nClosest passages:")
        lines += [f"[{h.rank}] {h.section or h.source} — {h.link}" for h in answer.passages[:3]]
    return "\n".join(lines)
