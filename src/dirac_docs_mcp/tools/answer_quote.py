"""Which sentence of the passages answers the question? The quote an answer ends with.

A small model's answer often misses the detail its passages give (the option, the value, the
command): on the dev questions the gold keyphrase was in the passages for 73 of the 95
answerable ones, in the 0.5B's raw answer for 31. Picking the passage sentence that answers
the question is an easier task than writing the answer, and a verbatim sentence cannot be
invented: each candidate sentence (the few of each passage closest to the question in
words, :func:`.support.select_evidence`) is scored by how likely the model finds the *user's
question* after reading it - the mean log-probability of the question's tokens given "an
excerpt of the DIRAC documentation: <section> <sentence>" (question likelihood, as in UPR,
Sachan et al. 2022, which reranks passages that way). The sentence a question is most
likely to be asked about is the one that answers it. One forward pass a candidate, no
decoding.

Measured on the 136 dev questions (``benchmarks/answer_quotes.py``, passages of the committed
default run): the best-scored of each passage's closest sentence carries a gold keyphrase
for 31 of the 95 answerable questions (33 from 2 or 3 a passage), the lexically closest
single sentence for 26. Replayed on two generation runs (``calibrate_answers.py --quotes``),
answers with a gold keyphrase go from 27 to 39 and from 26 to 38 of 95 with the quote (36
and 35 with a lexical pick). Question likelihood does not tell answerable from unanswerable
questions (AUROC 0.52), so the quote never decides whether to answer: it is added to an
answer the other checks accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..generator.base import Generator, Messages
from ..schemas import SearchHit
from .support import Passage, normalize, select_evidence

INSTRUCTION = "Write a question a DIRAC user could ask."


@dataclass(frozen=True)
class Quote:
    n: int  # the passage's [n]
    index: int  # the sentence's position in that passage (as given to the model, split)
    sentence: str  # verbatim
    score: float  # mean log-probability of the question's tokens after the sentence


def quote_messages(section: str, sentence: str) -> Messages:
    """The prompt a candidate is scored with: the sentence, then a request for a question;
    the user's question is the reply scored."""
    return [
        {
            "role": "user",
            "content": f"Excerpt of the DIRAC documentation ({section}):\n{sentence}\n\n"
            + INSTRUCTION,
        }
    ]


@dataclass(frozen=True)
class Candidate:
    n: int
    index: int
    section: str
    sentence: str


def candidates(
    question: str, hits: Sequence[SearchHit], passages: Sequence[Passage], per_passage: int
) -> list[Candidate]:
    """Each passage's ``per_passage`` sentences that cover most of the question's words
    (greedily: the second adds words the first lacks); sentences too short to answer
    anything, and repeats, are left out."""
    found: list[Candidate] = []
    seen: set[str] = set()
    for hit, passage in zip(hits, passages, strict=True):
        for sentence in select_evidence(question, passage, per_passage):
            key = normalize(sentence)
            if len(key) < 12 or key in seen:
                continue
            seen.add(key)
            found.append(
                Candidate(hit.rank, passage.sentences.index(sentence), hit.section, sentence)
            )
    return found


def score(
    generator: Generator, question: str, candidate: Candidate, timeout_s: float | None = None
) -> float | None:
    """Mean log-probability of the question's tokens after ``candidate`` (None: no tokens)."""
    logprobs = generator.continuation_logprobs(
        quote_messages(candidate.section, candidate.sentence), question, timeout_s=timeout_s
    )
    return sum(logprobs) / len(logprobs) if logprobs else None


def best_quote(
    generator: Generator,
    question: str,
    hits: Sequence[SearchHit],
    passages: Sequence[Passage],
    per_passage: int,
    timeout_s: float | None = None,
) -> Quote | None:
    """The candidate sentence after which the model finds ``question`` most likely, or
    None when no passage has a sentence sharing a word with it."""
    best: Quote | None = None
    for candidate in candidates(question, hits, passages, per_passage):
        value = score(generator, question, candidate, timeout_s)
        if value is None:
            return None
        if best is None or value > best.score:
            best = Quote(candidate.n, candidate.index, candidate.sentence, value)
    if best is None:
        return None
    # scored as the sentence alone; quoted with what it announces
    text = next(p.text for h, p in zip(hits, passages, strict=True) if h.rank == best.n)
    full = with_announced(text, best.sentence)
    return Quote(best.n, best.index, full, best.score)


# what a sentence ending in a colon announces: the block after it, up to a blank line
ANNOUNCED_MAX_CHARS = 600


def with_announced(text: str, sentence: str) -> str:
    """``sentence`` and, when it ends with a colon ("proceeds in the following order:"),
    the block of ``text`` it announces (a list, a code block: up to the next blank line,
    at most ANNOUNCED_MAX_CHARS, cut at a line end), verbatim: the sentence alone says
    nothing."""
    start = text.find(sentence)
    if not sentence.rstrip().endswith(":") or start < 0:
        return sentence
    end = start + len(sentence)
    rest = text[end:]
    body = rest.lstrip("\n")
    if not body.strip():
        return sentence
    block = body.split("\n\n", 1)[0]
    if len(block) > ANNOUNCED_MAX_CHARS:
        cut = block.rfind("\n", 0, ANNOUNCED_MAX_CHARS)
        if cut <= 0:
            return sentence
        block = block[:cut]
    return text[start : end + (len(rest) - len(body)) + len(block)].rstrip()


def already_said(quote: Quote, answer: str) -> bool:
    """The answer already contains the sentence (the model copied it whole)."""
    return normalize(quote.sentence) in normalize(answer)


def with_quote(answer: str, quote: Quote) -> str:
    """The answer followed by the verbatim sentence and its citation."""
    return f'{answer}\nThe documentation says [{quote.n}]: "{quote.sentence}"'
