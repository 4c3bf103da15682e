"""RAFT records (``qa export --format raft``) read, checked, split and turned into token ids
for ``tune generator``: the prompt exactly as the answer tool renders it, the loss on the
assistant turn only.

A record longer than ``max_seq_tokens`` is re-rendered through the serving prompt
(:func:`..tools.answer.build_messages`) with fewer characters per passage, the way the
answer tool itself clips passages, so a short training context sees the same prompt shape
with shorter passages rather than a prompt cut in the middle; a positive record whose
oracle passage no longer holds its answer after the cut is dropped (it would teach citing
what is not shown), as the export drops those cut by the serving clip.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError, NotFoundError
from ..models.tuned import DataFile, data_file
from ..schemas import SearchHit
from ..tools.answer import UNKNOWN_RULE, build_messages
from ..tools.qa_gates import faithfulness

ROLES = ("system", "user", "assistant")
MIN_PASSAGE_CHARS = 80  # below this a passage is a heading and a few words: drop the record
_QUESTION = "\n\nQuestion: "


@dataclass
class RaftFiles:
    """Where the records come from: a RAFT export folder or one JSONL."""

    train: Path
    validation: Path | None = None
    export_manifest: Path | None = None
    export_chars: int | None = None  # max_chars_per_passage the export rendered with

    def data_files(self) -> list[DataFile]:
        files = [self.train, self.validation, self.export_manifest]
        return [data_file(p) for p in files if p is not None]


@dataclass
class Example:
    """One record ready to train on: token ids and what the generation check needs."""

    id: str
    source: str
    messages: list[dict]  # prompt messages as trained (possibly re-rendered shorter)
    prompt_ids: list[int]
    target_ids: list[int]
    negative: bool
    oracle_rank: int | None
    question: str
    hits: list[SearchHit] = field(default_factory=list)
    chars_per_passage: int | None = None  # the clip the prompt was rendered with

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.target_ids)


def locate(path: Path) -> RaftFiles:
    """The training files under ``path`` (a folder holding ``train.jsonl`` and maybe
    ``validation.jsonl`` and the export's ``manifest.json``, or a JSONL file)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise NotFoundError(f"training data {path} does not exist")
    if path.is_file():
        return RaftFiles(train=path)
    train = path / "train.jsonl"
    if not train.is_file():
        raise NotFoundError(
            f"{path} holds no train.jsonl; write one with "
            f"'dirac-docs-mcp qa export PAIRS --format raft -o {path}'"
        )
    validation = path / "validation.jsonl"
    manifest = path / "manifest.json"
    chars = None
    if manifest.is_file():
        try:
            chars = json.loads(manifest.read_text())["raft"]["max_chars_per_passage"]
        except (OSError, ValueError, KeyError, TypeError):
            chars = None
    return RaftFiles(
        train=train,
        validation=validation if validation.is_file() else None,
        export_manifest=manifest if manifest.is_file() else None,
        export_chars=int(chars) if isinstance(chars, int) else None,
    )


def _check_record(record: Any, where: str) -> dict:
    if not isinstance(record, dict):
        raise InvalidInputError(f"{where}: a record must be a JSON object")
    messages = record.get("messages")
    if not isinstance(messages, list) or len(messages) < 2:
        raise InvalidInputError(f"{where}: 'messages' must list the prompt and the answer")
    for message in messages:
        if (
            not isinstance(message, dict)
            or message.get("role") not in ROLES
            or not isinstance(message.get("content"), str)
        ):
            raise InvalidInputError(
                f"{where}: each message needs a role ({'/'.join(ROLES)}) and a string content"
            )
    if messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
        raise InvalidInputError(f"{where}: the last message must be the assistant's answer")
    if messages[-2]["role"] != "user":
        raise InvalidInputError(f"{where}: the answer must follow a user message")
    passages = record.get("passages", [])
    if not isinstance(passages, list):
        raise InvalidInputError(f"{where}: 'passages' must be a list")
    return record


def read_records(path: Path) -> list[dict]:
    """The records of a JSONL, each checked (:class:`InvalidInputError` naming the line)."""
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path} is not UTF-8 text") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except ValueError:
            raise InvalidInputError(f"{path}:{number} is not JSON") from None
        records.append(_check_record(raw, f"{path}:{number}"))
    if not records:
        raise InvalidInputError(f"{path} holds no records")
    return records


def split_by_source(records: list[dict], share: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Validation records for a JSONL without a validation file: whole documents on one
    side (as ``qa export`` splits), about ``share`` of the records."""
    if not 0 <= share < 1:
        raise InvalidInputError(f"--val-share must be in [0, 1), got {share}")
    by_source: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_source[str(record.get("source") or record.get("id") or "")].append(record)
    sources = sorted(by_source)
    random.Random(seed).shuffle(sources)
    chosen: set[str] = set()
    taken = 0
    for source in sources:
        if taken >= share * len(records) or len(chosen) >= len(sources) - 1:
            break
        chosen.add(source)
        taken += len(by_source[source])
    train = [r for r in records if str(r.get("source") or r.get("id") or "") not in chosen]
    return train, [r for r in records if str(r.get("source") or r.get("id") or "") in chosen]


# --------------------------------------------------------------------------------------
# token ids
# --------------------------------------------------------------------------------------


def chat_ids(tokenizer, messages: list[dict], add_generation_prompt: bool) -> list[int]:
    """Token ids through the tokenizer's chat template (what the generator renders)."""
    if tokenizer.chat_template:
        ids = tokenizer.apply_chat_template(
            messages,
            add_generation_prompt=add_generation_prompt,
            tokenize=True,
            return_dict=False,
        )
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return list(ids)
    # a model without a chat template: the generator's plain transcript
    text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages)
    if add_generation_prompt:
        text += "Assistant:"
    return list(tokenizer.encode(text, add_special_tokens=False))


def target_ids(tokenizer, messages: list[dict], prompt: list[int], stops: list[int]) -> list[int]:
    """The assistant turn's ids as the template writes them after ``prompt``, up to and
    including its end-of-turn token (what generation stops on); the template's tail after
    that (a newline) is not the model's to learn."""
    full = chat_ids(tokenizer, messages, False)
    if full[: len(prompt)] == prompt and len(full) > len(prompt):
        target = full[len(prompt) :]
        end = next((i + 1 for i, t in enumerate(target) if t in stops), len(target))
        return target[:end]
    # a template that renders the history differently once an answer follows
    content = list(tokenizer.encode(messages[-1]["content"], add_special_tokens=False))
    return content + stops[:1]


def has_example(record: dict) -> bool:
    """Whether the record's prompt carries the worked exchange (``answer_example``): an
    assistant turn before the final one. Re-rendering keeps it as the record has it."""
    return any(m.get("role") == "assistant" for m in record["messages"][:-1])


def record_question(record: dict) -> str:
    user = record["messages"][-2]["content"]
    if _QUESTION not in user:
        return user
    return user.rsplit(_QUESTION, 1)[1].split("\n\n")[0]


def _answer_text(target: str) -> str:
    """The answer sentence(s) of a target ``{"answer": "... [n]", ...}`` without markers."""
    try:
        answer = str(json.loads(target).get("answer", ""))
    except (ValueError, AttributeError):
        answer = target
    return re.sub(r"\s*\[\d{1,2}\]", "", answer).strip()


class Renderer:
    """Records → :class:`Example`, cut to ``max_tokens`` as the module docstring says."""

    def __init__(self, tokenizer, stops: list[int], max_tokens: int, chars: list[int]):
        self.tokenizer = tokenizer
        self.stops = stops
        self.max_tokens = max_tokens
        self.chars = chars  # per-passage clips the records may have been rendered with
        self.dropped: Counter[str] = Counter()
        self.shortened = 0

    def _rerender(self, record: dict, question: str, hits: list[SearchHit]) -> int | None:
        """The clip that reproduces the record's prompt, or None if none does."""
        prompt = record["messages"][:-1]
        may_abstain = UNKNOWN_RULE in prompt[0]["content"]
        example = has_example(record)
        longest = max((len(h.text) for h in hits), default=0) + 1
        for chars in [*self.chars, longest]:
            if build_messages(question, hits, chars, may_abstain, example=example) == prompt:
                return chars
        return None

    def example(self, record: dict) -> Example | None:
        messages = record["messages"]
        question = record_question(record)
        try:
            hits = [SearchHit.model_validate(h) for h in record.get("passages") or []]
        except ValueError:
            hits = []
        prompt = chat_ids(self.tokenizer, messages[:-1], True)
        target = target_ids(self.tokenizer, messages, prompt, self.stops)
        chars = None
        if len(target) >= self.max_tokens // 2:
            self.dropped["answer longer than half of --max-seq-tokens"] += 1
            return None
        if len(prompt) + len(target) > self.max_tokens:
            chars = self._rerender(record, question, hits) if hits else None
            if chars is None:
                self.dropped["too long and not a re-renderable RAFT prompt"] += 1
                return None
            fitted = self._shorten(record, question, hits, chars, len(target))
            if fitted is None:
                return None
            messages, prompt, chars = fitted
            messages = [*messages, record["messages"][-1]]
            self.shortened += 1
        elif hits:
            chars = self._rerender(record, question, hits)
        rank = record.get("oracle_rank")
        return Example(
            id=str(record.get("id", "")),
            source=str(record.get("source", "")),
            messages=messages[:-1],
            prompt_ids=prompt,
            target_ids=target,
            negative=bool(record.get("negative", False)),
            oracle_rank=int(rank) if isinstance(rank, int) else None,
            question=question,
            hits=hits,
            chars_per_passage=chars,
        )

    def _shorten(
        self, record: dict, question: str, hits: list[SearchHit], chars: int, target: int
    ) -> tuple[list[dict], list[int], int] | None:
        """The longest per-passage clip whose prompt fits (binary search), checked to keep
        the oracle's support."""
        may_abstain = UNKNOWN_RULE in record["messages"][0]["content"]
        example = has_example(record)
        budget = self.max_tokens - target

        def render(n: int) -> tuple[list[dict], list[int]]:
            messages = build_messages(question, hits, n, may_abstain, example=example)
            return messages, chat_ids(self.tokenizer, messages, True)

        low, high = MIN_PASSAGE_CHARS, chars - 1
        best: tuple[list[dict], list[int], int] | None = None
        while low <= high:
            middle = (low + high) // 2
            messages, ids = render(middle)
            if len(ids) <= budget:
                best = (messages, ids, middle)
                low = middle + 1
            else:
                high = middle - 1
        if best is None:
            self.dropped["prompt too long even at the shortest passages"] += 1
            return None
        rank = record.get("oracle_rank")
        if not record.get("negative") and isinstance(rank, int) and 1 <= rank <= len(hits):
            oracle = hits[rank - 1]
            answer = _answer_text(record["messages"][-1]["content"])
            shown = oracle.text[: best[2]]
            if faithfulness(question, answer, shown, oracle.section).missing:
                self.dropped["oracle's support cut by the shorter context"] += 1
                return None
        return best
