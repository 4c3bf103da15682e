"""Base vs tuned on the held-out RAFT records: the answer-token loss, and a small generation
check through the serving decoding path (chat template, JSON schema, greedy) scored by the
answer tool's own checks (:func:`..tools.answer_check.check_answer`).

A positive record counts as right when the answer passes the checks and cites the oracle
passage; a negative one (oracle left out) when the answer is an abstention or fails the
checks, i.e. the tool would abstain.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..errors import GenerationError
from ..tools.answer import answer_instruction, answer_schema
from ..tools.answer_check import check_answer
from ..tools.support import Passage, says_unknown
from .lora_loop import mean_loss
from .raft_data import Example


@dataclass
class GenerationScore:
    records: int = 0
    positives: int = 0
    negatives: int = 0
    answered_citing_oracle: int = 0  # positives: passed the checks and cited the oracle
    passed_checks: int = 0  # positives: passed the checks (any citation)
    abstained_on_negatives: int = 0
    no_json: int = 0  # the generation did not close its JSON (token cap)
    seconds: float = 0.0

    @property
    def right(self) -> float:
        """Share of records handled as the tool should: cited answer or abstention."""
        good = self.answered_citing_oracle + self.abstained_on_negatives
        return good / self.records if self.records else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "seconds": round(self.seconds, 2),
            "right_share": round(self.right, 4),
        }


def _passages(example: Example) -> list[Passage]:
    chars = example.chars_per_passage or max((len(h.text) for h in example.hits), default=1) + 1
    return [
        Passage(h.text if len(h.text) <= chars else h.text[:chars] + "…", f"{h.section} {h.source}")
        for h in example.hits
    ]


def generation_check(
    generator, examples: Sequence[Example], settings: Settings, max_new_tokens: int
) -> GenerationScore:
    """Generate an answer for each example (greedy, the serving schema) and score it."""
    score = GenerationScore()
    for example in examples:
        if not example.hits:
            continue
        score.records += 1
        started = time.perf_counter()
        try:
            generation = generator.generate(
                example.messages,
                max_new_tokens=max_new_tokens,
                json_schema=answer_schema(len(example.hits)),
            )
        except GenerationError:  # the JSON did not close within the cap
            generation = None
        score.seconds += time.perf_counter() - started
        data = (generation.data or {}) if generation is not None else {}
        if generation is None or not data:
            score.no_json += 1
        text = str(data.get("answer", "")).strip()
        check = check_answer(
            example.question,
            text,
            list(data.get("citations", []) or []),
            _passages(example),
            settings.answer_min_window_share,
            settings.answer_check_asked_type,
            instructions=example.messages[0]["content"] + "\n" + answer_instruction(False),
            evidence_sentences=settings.answer_evidence_sentences,
            cut_at_bound=generation is None or generation.finish_reason != "eos",
            min_anchored_share=settings.answer_min_anchored_share,
        )
        if example.negative:
            score.negatives += 1
            if check.problem is not None or says_unknown(text):
                score.abstained_on_negatives += 1
            continue
        score.positives += 1
        if check.problem is None:
            score.passed_checks += 1
            cited = {n for sentence in check.kept for n in sentence.passages}
            if example.oracle_rank in cited:
                score.answered_citing_oracle += 1
    return score


def compare(
    model,
    generator,
    examples: Sequence[Example],
    settings: Settings,
    pad_id: int,
    device: Any,
    generate: int,
    max_new_tokens: int,
) -> dict[str, Any]:
    """Validation loss and the generation check on the first ``generate`` examples, for
    the base (adapter disabled) and the tuned model; ``generator`` wraps ``model``."""
    model.eval()
    out: dict[str, Any] = {"validation_records": len(examples)}
    for label in ("base", "tuned"):
        scope = model.disable_adapter() if label == "base" else contextlib.nullcontext()
        with scope:
            out[f"{label}_validation_loss"] = round(mean_loss(model, examples, pad_id, device), 4)
            if generate:
                score = generation_check(generator, examples[:generate], settings, max_new_tokens)
                out[f"{label}_generation"] = score.to_json()
    return out


def not_better(metrics: dict[str, Any]) -> list[str]:
    """Why the tuned adapter is not better than its base on the held-out records (empty
    when it is better on every figure measured)."""
    why = []
    base, tuned = metrics.get("base_validation_loss"), metrics.get("tuned_validation_loss")
    if base is not None and tuned is not None and tuned >= base:
        why.append(f"validation loss {tuned:.4f} is not below the base's {base:.4f}")
    base_gen, tuned_gen = metrics.get("base_generation"), metrics.get("tuned_generation")
    if base_gen and tuned_gen and tuned_gen["right_share"] < base_gen["right_share"]:
        why.append(
            f"the generation check is worse: {tuned_gen['right_share']:.2f} of "
            f"{tuned_gen['records']} records handled right vs the base's "
            f"{base_gen['right_share']:.2f}"
        )
    return why
