"""Decoding helpers shared by back-ends, pure and unit-tested without a model: when to
stop (:class:`StopPolicy`), how an over-long prompt is cut (:func:`fit_prompt`), which token
ids spell yes/no (:func:`word_token_ids`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from ..errors import GenerationError
from .base import FinishReason, Messages, ProgressFn

log = logging.getLogger(__name__)

PROGRESS_EVERY = 8  # tokens between on_progress calls
TRUNCATION_MARK = "\n[...]\n"

YES_WORDS = ("yes", "true")
NO_WORDS = ("no", "false")


class StopPolicy:
    """Decides after each new token whether to stop: deadline, cancel event, progress.

    ``clock`` is injectable so tests can drive it; ``check`` returns the finish reason that
    applies (``"timeout"``/``"cancelled"``) or None to go on.
    """

    def __init__(
        self,
        max_new_tokens: int,
        deadline: float | None,
        cancel: threading.Event | None = None,
        on_progress: ProgressFn | None = None,
        clock: Callable[[], float] = time.monotonic,
        progress_every: int = PROGRESS_EVERY,
    ):
        self.max_new_tokens = max_new_tokens
        self.deadline = deadline
        self.cancel = cancel
        self.on_progress = on_progress
        self.clock = clock
        self.progress_every = max(1, progress_every)
        self.first_token_at: float | None = None
        self.reason: FinishReason | None = None
        self.new_tokens = 0
        self._reported = 0

    def check(self, new_tokens: int) -> FinishReason | None:
        now = self.clock()
        if self.first_token_at is None and new_tokens > 0:
            self.first_token_at = now
        self.new_tokens = new_tokens
        if self.on_progress is not None and new_tokens - self._reported >= self.progress_every:
            self._reported = new_tokens
            self._report(new_tokens)
        if self.reason is None:
            if self.cancel is not None and self.cancel.is_set():
                self.reason = "cancelled"
            elif self.deadline is not None and now >= self.deadline:
                self.reason = "timeout"
        return self.reason

    def finish(self) -> None:
        """Final progress report (once, with the final count)."""
        if self.on_progress is not None and self._reported != self.new_tokens:
            self._reported = self.new_tokens
            self._report(self.new_tokens)

    def _report(self, new_tokens: int) -> None:
        try:
            self.on_progress(new_tokens, self.max_new_tokens)  # type: ignore[misc]
        except Exception:  # a broken progress callback must not kill the generation
            log.exception("on_progress callback failed")


def fit_prompt(
    messages: Messages,
    budget: int,
    render: Callable[[Messages], list[int]],
    encode: Callable[[str], list[int]],
    decode: Callable[[list[int]], str],
    min_keep: int = 32,
) -> tuple[list[int], int, Messages]:
    """Render ``messages`` to token ids that fit ``budget``.

    Over budget, the middle of the longest message is replaced by ``[...]``: its head
    (instructions, the first passages) and tail (the question) survive. Raises
    GenerationError if even that cannot fit. Returns (ids, tokens cut, messages used).
    """
    ids = render(messages)
    original = len(ids)
    messages = [dict(m) for m in messages]
    for _ in range(6):
        if len(ids) <= budget:
            return ids, original - len(ids), messages
        excess = len(ids) - budget
        lengths = [len(encode(m.get("content", ""))) for m in messages]
        index = max(range(len(messages)), key=lambda i: lengths[i])
        content_ids = encode(messages[index].get("content", ""))
        mark = len(encode(TRUNCATION_MARK))
        keep = len(content_ids) - excess - mark - 4  # small margin for re-tokenisation
        if keep < min_keep:
            break
        head = (keep * 2) // 3  # the head usually holds the instructions and best passages
        tail = keep - head
        messages[index]["content"] = (
            decode(content_ids[:head]) + TRUNCATION_MARK + decode(content_ids[-tail:])
        )
        ids = render(messages)
    if len(ids) <= budget:
        return ids, original - len(ids), messages
    raise GenerationError(
        f"the prompt has {original} tokens and cannot be cut to the {budget}-token budget; "
        "raise generator_max_context_tokens or send fewer passages"
    )


def word_token_ids(encode: Callable[[str], list[int]], words: Sequence[str]) -> set[int]:
    """Ids of single-token spellings of ``words`` (lower, Capitalised, UPPER, with and
    without a leading space)."""
    ids: set[int] = set()
    for word in words:
        for variant in {word, word.capitalize(), word.upper()}:
            for spelled in (variant, " " + variant):
                tokens = encode(spelled)
                if len(tokens) == 1:
                    ids.add(tokens[0])
    return ids
