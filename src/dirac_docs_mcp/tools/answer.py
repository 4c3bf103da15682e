"""answer_question: retrieve → numbered passages → constrained generation → checked, cited
sentences, or an abstention that shows the closest evidence.

What the user gets is decided by the code, not by the prompt (a 0.5B follows "never invent"
loosely). In order, each step a reason to abstain:
1. *coverage of the question*: the question's specific terms (a product, an option, a
   command) must occur in the passages; "How do I post to Slack?" over passages that never
   say Slack is not answerable from them (``answer_min_question_coverage``).
2. *hygiene*: an empty answer, a refusal, the prompt's instructions or the question echoed
   back, a last sentence cut by the length bound or broken off by the model ("by setting
   the") are not answers; a generation that ran out of tokens is retried once with half the
   passage text and a one-sentence bound.
3. *support of each sentence* (:mod:`.support`): a sentence is kept only when one passage
   contains all its specific terms and most of its content words within a few consecutive
   sentences; it then cites that passage. Unsupported sentences are dropped; if none remain
   the tool abstains.
4. *the asked detail*: a question that asks for a number, an option or a command is answered
   only when a kept sentence gives one the question did not already name
   (``answer_check_asked_type``).
5. *the answer came from the passages* (:mod:`.answer_confidence`): the model's mean token
   log-probability for its answer with the passages minus without them (context PMI); a
   restated question or a guessed yes/no scores near zero (``answer_min_context_pmi``).
Optional, when configured: the best dense similarity (``answer_min_support``) and a judge
model's P(answerable) (``answer_judge_model`` + ``answer_min_p_answerable``).
Every answer carries ``evidence``: the verbatim passage sentences that support it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

from ..errors import GenerationError, InvalidInputError
from ..runtime import Runtime
from ..schemas import Answer, Citation, Evidence, SearchHit
from .answer_check import AnswerCheck, asked_kind, check_answer
from .answer_confidence import context_pmi
from .answer_quote import Quote, already_said, best_quote, with_quote
from .search import retrieve, to_hits
from .support import Passage, question_coverage, select_evidence
from .support import says_unknown as says_unknown

log = logging.getLogger(__name__)

__all__ = ["AnswerCheck", "answer_question", "asked_kind", "check_answer", "format_answer"]

SYSTEM_PROMPT = (
    "You are a support assistant for DIRAC, the grid interware. Answer ONLY from the numbered "
    "passages. Cite the passages you use as [1], [2]. Never invent commands or options."
)
UNKNOWN_RULE = " If the passages do not contain the answer, say: I don't know."
# One worked exchange before the real one (answer_example): it shows a small model the
# shape wanted - a whole sentence in the passage's words, the exact option and value, the
# citation - instead of echoing the instructions or the question (what the 0.5B did on a
# fifth of the dev questions without it). Its facts are checked like any answer's: copied
# into another answer, they are not in that answer's passages and are dropped.
EXAMPLE_PASSAGES = (
    "[1] Systems › WorkloadManagement › Agents › StalledJobAgent "
    "(DIRAC/docs/source/AdministratorGuide/Systems/WorkloadManagement/StalledJobAgent.rst)\n"
    "The StalledJobAgent hunts for stalled jobs in the Job database. Jobs in the Running "
    "state whose pilot has not sent a heartbeat for StalledTimeHours are declared Stalled.\n"
    "StalledTimeHours | hours before a running job is declared stalled | StalledTimeHours = 2"
    "\n\n[2] User Guide › Getting a proxy (DIRAC/docs/source/UserGuide/proxy.rst)\n"
    "To create a proxy with a given group, run dirac-proxy-init -g <group>."
)
EXAMPLE_QUESTION = "After how long without a heartbeat is a running job declared stalled?"
EXAMPLE_ANSWER = (
    '{"answer": "The StalledJobAgent declares a Running job Stalled when its pilot has sent '
    'no heartbeat for StalledTimeHours, 2 hours by default [1].", "citations": [1]}'
)

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


def answer_instruction(one_sentence: bool = False) -> str:
    """The instruction after the question; with SYSTEM_PROMPT, the text an answer must not
    echo back."""
    return ("Answer in one sentence" if one_sentence else "Answer in one to three sentences") + (
        ", in the passages' own words: give the exact option, command or value they state. "
        "Cite passages as [n]."
    )


def build_messages(
    question: str,
    hits: list[SearchHit],
    max_chars_per_passage: int,
    model_may_abstain: bool = False,
    one_sentence: bool = False,
    example: bool = False,
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
        "Passages:\n\n"
        + "\n\n".join(blocks)
        + f"\n\nQuestion: {question}\n\n"
        + answer_instruction(one_sentence)
    )
    system = SYSTEM_PROMPT
    if model_may_abstain:
        system += UNKNOWN_RULE
        user += " If the passages do not contain the answer, answer exactly: I don't know."
    shots = []
    if example:
        shots = [
            {
                "role": "user",
                "content": f"Passages:\n\n{EXAMPLE_PASSAGES}\n\nQuestion: {EXAMPLE_QUESTION}"
                f"\n\n{answer_instruction(one_sentence)}",
            },
            {"role": "assistant", "content": EXAMPLE_ANSWER},
        ]
    return [{"role": "system", "content": system}, *shots, {"role": "user", "content": user}]


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


def _passages(hits: list[SearchHit], max_chars: int) -> list[Passage]:
    return [Passage(_clip(h.text, max_chars), f"{h.section} {h.source}") for h in hits]


def _clip(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[:max_chars] + "…"


def _evidence_item(hit: SearchHit, sentences: list[str]) -> Evidence:
    return Evidence(
        n=hit.rank,
        source=hit.source,
        section=hit.section,
        link=hit.link,
        page=hit.page,
        sentences=sentences,
    )


def closest_evidence(
    question: str, hits: list[SearchHit], passages: list[Passage], k: int
) -> list[Evidence]:
    """Each passage's sentences closest to the question (evidence-only mode, abstentions)."""
    items = []
    for hit, passage in zip(hits, passages, strict=True):
        sentences = select_evidence(question, passage, k)
        if sentences:
            items.append(_evidence_item(hit, sentences))
    return items


def answer_question(
    runtime: Runtime,
    question: str,
    limit: int | None = None,
    cancel: threading.Event | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    mode: str | None = None,
    trace: dict | None = None,
    doc_set: str | None = None,
) -> Answer:
    """Answer ``question`` from the index, or abstain. ``trace``, when given, receives each
    raw generation (text, citations, finish reason) so an evaluation can replay the checks
    offline with other thresholds (benchmarks/calibrate_answers.py)."""
    settings = runtime.settings
    limit = settings.answer_passages if limit is None else limit
    mode = mode or settings.answer_mode
    if mode not in ("generate", "evidence"):
        raise InvalidInputError(f"mode must be 'generate' or 'evidence', got {mode!r}")
    if not 1 <= limit <= settings.answer_max_passages:
        raise InvalidInputError(
            f"limit must be between 1 and {settings.answer_max_passages}, got {limit}"
        )
    timings: dict[str, float] = {}
    signals: dict[str, float] = {}
    started = time.perf_counter()
    chunks = retrieve(runtime, question, limit, doc_set=doc_set)
    support_score = runtime.best_dense_similarity(question)
    hits, _ = to_hits(chunks, settings.max_result_chars)
    passages = _passages(hits, settings.answer_max_chars_per_passage)
    coverage = question_coverage(question, passages)
    signals["question_term_coverage"] = round(coverage.term_share, 4)
    signals["question_word_coverage"] = round(coverage.word_share, 4)
    signals["question_window_coverage"] = round(coverage.window_share, 4)
    signals["question_terms"] = float(len(coverage.terms))
    timings["retrieval_s"] = round(time.perf_counter() - started, 4)
    k_evidence = settings.answer_evidence_sentences

    def abstain(reason: str, **extra) -> Answer:
        timings["total_s"] = round(time.perf_counter() - started, 4)
        return Answer(
            question=question,
            answered=False,
            answer="I don't know: " + reason,
            reason=reason,
            passages=hits,
            support=support_score,
            evidence=closest_evidence(question, hits, passages, k_evidence),
            signals=signals,
            timings=timings,
            **extra,
        )

    if not hits:
        return abstain("the index has no passage for this question")
    if support_score is not None and support_score < settings.answer_min_support:
        return abstain(
            f"no passage is close to the question (best similarity {support_score:.2f} < "
            f"{settings.answer_min_support:.2f})"
        )
    if coverage.term_share < settings.answer_min_question_coverage:
        missing = ", ".join(repr(t) for t in coverage.missing_terms[:4])
        return abstain(f"the documentation passages found never mention {missing}")

    if mode == "evidence":
        evidence = closest_evidence(question, hits, passages, k_evidence)
        if not evidence:
            return abstain("no passage sentence shares a word with the question")
        timings["total_s"] = round(time.perf_counter() - started, 4)
        return Answer(
            question=question,
            answered=True,
            answer="\n".join(f'"{s}" [{e.n}]' for e in evidence for s in e.sentences),
            citations=[_citation(hits[e.n - 1]) for e in evidence],
            passages=hits,
            support=support_score,
            evidence=evidence,
            signals=signals,
            timings=timings,
        )

    t0 = time.perf_counter()
    generator = runtime.generator()
    timings["generator_load_s"] = round(time.perf_counter() - t0, 4)

    p_answerable = None
    if settings.answer_min_p_answerable > 0:
        t0 = time.perf_counter()
        judge = generator
        if settings.answer_judge_model and settings.answer_judge_model != settings.generator_model:
            judge = runtime.generator(settings.answer_judge_model)
        messages = build_messages(question, hits, settings.answer_max_chars_per_passage)
        p_answerable = judge.yes_probability(judge_messages(question, messages))
        timings["judge_s"] = round(time.perf_counter() - t0, 4)
        signals["p_answerable"] = round(p_answerable, 4)
        if p_answerable < settings.answer_min_p_answerable:
            return abstain(
                f"the passages do not seem to answer it (p={p_answerable:.2f})",
                model=generator.model_id,
                p_answerable=p_answerable,
            )

    budget = settings.generator_max_new_tokens
    attempts = [
        # ~3 characters a token, leaving room for the citations and the JSON around it, so
        # the JSON closes before the token cap
        (settings.answer_max_chars_per_passage, max(40, 3 * (budget - 24)), False),
        # the retry: half the passage text and a one-sentence bound
        (max(200, settings.answer_max_chars_per_passage // 2), max(40, budget), True),
    ]
    check: AnswerCheck | None = None
    generation = None
    retry_reason = None
    for attempt, (chars, max_chars, short) in enumerate(attempts):
        messages = build_messages(
            question,
            hits,
            chars,
            settings.answer_model_may_abstain,
            one_sentence=short,
            example=settings.answer_example,
        )
        try:
            generation = generator.generate(
                messages,
                max_new_tokens=budget,
                json_schema=answer_schema(len(hits), max_chars),
                timeout_s=settings.generator_timeout_s,
                cancel=cancel,
                on_progress=on_progress,
            )
        except GenerationError as exc:
            retry_reason = f"the model gave no complete answer ({exc})"
            generation = None
            if attempt == 0 and not (cancel is not None and cancel.is_set()):
                continue
            break
        if generation.finish_reason == "cancelled":
            return abstain("cancelled", model=generator.model_id, p_answerable=p_answerable)
        data = generation.data or {}
        text = strip_bad_markers(str(data.get("answer", "")).strip(), len(hits))
        if trace is not None:
            trace.setdefault("attempts", []).append(
                {
                    "answer": text,
                    "citations": list(data.get("citations", []) or []),
                    "finish_reason": generation.finish_reason,
                    "max_chars_per_passage": chars,
                    "max_answer_chars": max_chars,
                    "new_tokens": generation.new_tokens,
                }
            )
        check = check_answer(
            question,
            text,
            list(data.get("citations", []) or []),
            _passages(hits, chars),
            settings.answer_min_window_share,
            settings.answer_check_asked_type,
            instructions=messages[0]["content"] + "\n" + answer_instruction(short),
            evidence_sentences=k_evidence,
            cut_at_bound=generation.finish_reason in ("length", "timeout")
            or len(text) >= max_chars - 8,
            min_anchored_share=settings.answer_min_anchored_share,
        )
        out_of_budget = generation.finish_reason in ("length", "timeout") or (
            check.problem is not None and check.problem.startswith("the answer was cut off")
        )
        if attempt == 0 and out_of_budget:
            retry_reason = (
                "the first answer ran out of its token budget"
                if generation.finish_reason == "length"
                else "the first answer was cut off"
                if generation.finish_reason != "timeout"
                else "the first answer ran out of time"
            )
            signals["retries"] = 1.0
            continue
        break
    if generation is None or check is None:
        signals["retries"] = 1.0
        return abstain(
            retry_reason or "the model gave no complete answer", model=generator.model_id
        )
    timings.update(
        generation_s=round(generation.seconds, 4),
        ttft_s=round(generation.ttft_s or 0.0, 4),
        new_tokens=float(generation.new_tokens),
        prompt_tokens=float(generation.prompt_tokens),
        tokens_per_s=round(generation.tokens_per_s, 2),
    )
    pmi = None
    if trace is not None or (settings.answer_min_context_pmi > 0 and check.problem is None):
        t0 = time.perf_counter()
        without_passages = build_messages(
            question,
            [],
            settings.answer_max_chars_per_passage,
            settings.answer_model_may_abstain,
            one_sentence=bool(signals.get("retries")),
            example=settings.answer_example,
        )
        try:
            pmi = context_pmi(generator, messages, without_passages, text)
        except GenerationError as exc:
            # the generator stayed busy past its budget: the answer has passed every
            # support check, so it goes out unscored rather than failing the call
            log.warning("context PMI not measured: %s", exc)
        timings["context_pmi_s"] = round(time.perf_counter() - t0, 4)
        if pmi is not None:
            signals["context_pmi"] = round(pmi.value, 4)
            if trace is not None and trace.get("attempts"):
                trace["attempts"][-1]["context_pmi"] = round(pmi.value, 4)
    below_context_pmi = (
        settings.answer_min_context_pmi > 0
        and pmi is not None
        and pmi.value < settings.answer_min_context_pmi
    )
    quote = None
    if settings.answer_quote_candidates > 0 and (
        trace is not None or (check.problem is None and not below_context_pmi)
    ):
        # from the passages as the judged attempt was given them
        quote = _quote(generator, question, hits, chars, settings, timings, signals)
        if trace is not None and quote is not None:
            trace["quote"] = {
                "n": quote.n,
                "index": quote.index,
                "sentence": quote.sentence,
                "score": round(quote.score, 4),
            }
    signals["sentences_supported"] = float(len(check.kept))
    if check.anchored is not None:
        signals["anchored_share"] = round(check.anchored, 4)
    signals["sentences_generated"] = float(len(check.kept) + len(check.dropped))
    signals.setdefault("retries", 0.0)
    if check.problem is not None:
        reason = check.problem
        if retry_reason and signals["retries"]:
            reason += f" (retried once: {retry_reason})"
        return abstain(reason, model=generator.model_id, p_answerable=p_answerable)
    if below_context_pmi:
        assert pmi is not None
        return abstain(
            "the answer the model wrote does not come from the passages: it was about as "
            f"likely without them (context PMI {pmi.value:.2f} < "
            f"{settings.answer_min_context_pmi:.2f})",
            model=generator.model_id,
            p_answerable=p_answerable,
        )
    text = check.text
    cited = {n for sentence in check.kept for n in sentence.passages}
    if quote is not None and not already_said(quote, text):
        text = with_quote(text, quote)
        cited.add(quote.n)
    evidence = []
    for n in sorted(cited):
        sentences = [quote.sentence] if quote is not None and quote.n == n else []
        for kept in check.kept:
            sentences += [e for e in kept.evidence.get(n, []) if e not in sentences]
        evidence.append(_evidence_item(hits[n - 1], sentences[: 2 * k_evidence]))
    timings["total_s"] = round(time.perf_counter() - started, 4)
    return Answer(
        question=question,
        answered=True,
        answer=text,
        citations=[_citation(hits[n - 1]) for n in sorted(cited)],
        passages=hits,
        model=generator.model_id,
        quote=_evidence_item(hits[quote.n - 1], [quote.sentence]) if quote else None,
        support=support_score,
        p_answerable=p_answerable,
        evidence=evidence,
        signals=signals,
        timings=timings,
    )


def _quote(
    generator,
    question: str,
    hits: list[SearchHit],
    chars: int,
    settings,
    timings: dict[str, float],
    signals: dict[str, float],
) -> Quote | None:
    """The passage sentence that answers the question (:mod:`.answer_quote`), from the
    passages as the model was given them; None when the generator stays busy past its
    budget (the checked answer goes out without it)."""
    t0 = time.perf_counter()
    try:
        quote = best_quote(
            generator,
            question,
            hits,
            _passages(hits, chars),
            settings.answer_quote_candidates,
            timeout_s=settings.generator_timeout_s,
        )
    except GenerationError as exc:
        log.warning("no quote: %s", exc)
        quote = None
    timings["quote_s"] = round(time.perf_counter() - t0, 4)
    if quote is not None:
        signals["quote_logprob"] = round(quote.score, 4)
    return quote


def _citation(hit: SearchHit) -> Citation:
    return Citation(
        n=hit.rank,
        source=hit.source,
        section=hit.section,
        chunk_id=hit.chunk_id,
        link=hit.link,
        page=hit.page,
    )


def format_answer(answer: Answer) -> str:
    """The text content: the answer, each cited passage with its verbatim evidence; for an
    abstention the reason and the closest passages with their closest sentences."""
    lines = [answer.answer]
    quotes = {e.n: e.sentences for e in answer.evidence}
    if answer.answered and answer.citations:
        lines.append("")
        for c in answer.citations:
            lines.append(f"[{c.n}] {c.section or c.source} — {c.link}")
            lines += [f'    "{s}"' for s in quotes.get(c.n, [])]
    elif not answer.answered and answer.passages:
        lines.append("\nClosest passages:")
        for h in answer.passages[:3]:
            lines.append(f"[{h.rank}] {h.section or h.source} — {h.link}")
            lines += [f'    "{s}"' for s in quotes.get(h.rank, [])[:1]]
    return "\n".join(lines)
