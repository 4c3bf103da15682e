"""The generator interface: :class:`Generation` (one reply and its figures) and the
:class:`Generator` protocol every back-end implements. Back-ends live beside it
(:mod:`.transformers_backend`); tools get one from ``Runtime.generator()``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

FinishReason = Literal["eos", "length", "timeout", "cancelled"]
Messages = list[dict[str, str]]
ProgressFn = Callable[[int, int], None]


@dataclass
class Generation:
    """One generation's text and figures."""

    text: str
    prompt_tokens: int
    new_tokens: int
    seconds: float
    ttft_s: float | None  # time to first token (prompt reading + first step); None if none
    tokens_per_s: float  # new tokens / seconds after the first token (decode speed)
    finish_reason: FinishReason
    data: Any = None  # the parsed JSON value when a json_schema was given
    prompt_truncated_tokens: int = 0  # tokens cut from the prompt to fit the context
    repairs: int = 0  # repair retries the JSON needed (fallback path without xgrammar)
    error: str | None = None  # generate_batch: why this row gave no usable JSON

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@runtime_checkable
class Generator(Protocol):
    model_id: str

    def count_tokens(self, messages: Messages) -> int: ...

    def generate(
        self,
        messages: Messages,
        max_new_tokens: int | None = None,
        json_schema: dict | None = None,
        timeout_s: float | None = None,
        cancel: threading.Event | None = None,
        on_progress: ProgressFn | None = None,
    ) -> Generation: ...

    def generate_batch(
        self,
        conversations: Sequence[Messages],
        max_new_tokens: int | None = None,
        json_schema: dict | None = None,
        timeout_s: float | None = None,
        cancel: threading.Event | None = None,
        on_progress: ProgressFn | None = None,
    ) -> list[Generation]: ...

    def yes_probability(
        self, messages: Messages, answer_prefix: str = "", timeout_s: float | None = None
    ) -> float: ...

    def continuation_logprobs(
        self,
        messages: Messages,
        continuation: str,
        prefix: str = "",
        timeout_s: float | None = None,
    ) -> list[float]: ...
