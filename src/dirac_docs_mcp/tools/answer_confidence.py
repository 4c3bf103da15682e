"""Did the answer come from the passages? The context PMI of a generated answer.

The support checks (:mod:`.answer_check`) ask whether an answer's words and specifics are in
its passages; they cannot see an answer that is built from the passages' words but says what
the model would have said anyway: the question restated ("Yes, you can let a site process
...", "DIRAC checkpoints running jobs so that they can continue..."), a guessed yes or no, a
half sentence. The model's own token probabilities tell those apart: the mean
log-probability of the answer's tokens after the prompt it was generated from, minus the same
after that prompt with no passages. The difference, in nats a token, is the pointwise mutual
information between the answer and the passages: near zero or below when the passages did
not shape the answer. Cost: the first pass reuses the generation's key/value cache of the
prompt, the second reads a prompt without passages, so together about the answer's length
plus a few hundred tokens of forward pass, no decoding.

Measured on the 136 dev questions (``benchmarks/answer_logprob_signals.py``, the committed
default run): AUROC answerable vs unanswerable 0.69 (near misses 0.69); among the answers the
other checks let through, right (gold keyphrase) vs not 0.66. The model's plain confidence
(mean log-probability with the passages) ranks right above wrong answers about as well
(0.67) but not answerable above unanswerable questions (0.55, near misses 0.58): the 0.5B
is as sure of what it invents as of what it reads, and only the difference shows it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..generator.base import Generator, Messages

# the reply opens with this (answer_schema puts "answer" first); the answer text is scored
# after it both times, so the two passes differ only in the passages
ANSWER_PREFIX = '{"answer": "'


@dataclass(frozen=True)
class ContextPmi:
    with_passages: tuple[float, ...]  # each answer token's log-probability with the passages
    without: tuple[float, ...]  # ... after the same prompt without them

    @property
    def value(self) -> float:
        """Mean log-probability with the passages minus without (nats a token)."""
        return sum(self.with_passages) / len(self.with_passages) - sum(self.without) / len(
            self.without
        )


def score_context(
    generator: Generator,
    messages_with: Messages,
    messages_without: Messages,
    reply: str,
    prefix: str = "",
    timeout_s: float | None = None,
) -> ContextPmi | None:
    """``reply``'s token log-probabilities after ``prefix`` in both conversations (the
    mechanism; :func:`context_pmi` is the answer tool's use of it), or None for a reply
    with no tokens."""
    with_passages = generator.continuation_logprobs(messages_with, reply, prefix, timeout_s)
    without = generator.continuation_logprobs(messages_without, reply, prefix, timeout_s)
    if not with_passages or not without:
        return None
    return ContextPmi(tuple(with_passages), tuple(without))


def as_written(answer: str) -> str:
    """The answer text as the model wrote it inside its JSON reply (escapes and all)."""
    return json.dumps(answer, ensure_ascii=False)[1:-1]


def context_pmi(
    generator: Generator,
    messages_with: Messages,
    messages_without: Messages,
    answer: str,
) -> ContextPmi | None:
    """The answer's context PMI (``answer`` as the tool parsed it; scored as the JSON string
    the model wrote it in), or None for an empty answer.

    Call it right after generating from ``messages_with``: the back-end then reuses that
    prompt's key/value cache. That is also what the figures were calibrated with
    (``benchmarks/answer_logprob_signals.py`` does the same), which matters on the CPU int8
    model, whose activation scales depend on how many tokens one forward pass reads: the
    same answer's PMI with and without the cache differs by 0.07 nats a token (sd over the
    136 dev answers, at most 0.29); in fp32 the two are equal."""
    if not answer:
        return None
    return score_context(
        generator, messages_with, messages_without, as_written(answer), ANSWER_PREFIX
    )
