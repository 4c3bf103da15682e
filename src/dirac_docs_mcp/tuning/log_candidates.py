"""``tune generator --log-candidates FILE``: questions users asked (the lines ``log export``
writes: ``{"question", "passages": [...]}``) answered by the current ``answer_question``
pipeline with the base model, kept as training records only when the tool answered, i.e.
every sentence passed its support checks.

The pipeline retrieves anew (the logged passages show what was served then, not what the
index holds now), and the record is rendered like a RAFT record: the serving prompt
(:func:`..tools.answer.build_messages`) over the passages the answer used, the checked answer
with its citations as the target. Questions near an evaluation question
(``qa_holdout_questions``, ``qa_max_holdout_similarity``) are left out, as ``qa export``
leaves out generated ones.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import InvalidInputError, NotFoundError
from ..runtime import Runtime
from ..schemas import Answer
from ..tools.answer import answer_question, build_messages
from ..tools.qa_export import closest_holdout, load_holdout_questions


@dataclass
class _Question:
    question: str  # the shape closest_holdout reads


def read_questions(path: Path) -> list[str]:
    """The distinct questions of a log export (case and spacing ignored), in file order."""
    if not path.is_file():
        raise NotFoundError(f"log candidates {path} do not exist")
    seen: set[str] = set()
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            question = json.loads(line)["question"]
        except (ValueError, KeyError, TypeError):
            raise InvalidInputError(f"{path}:{number} has no 'question'") from None
        if not isinstance(question, str) or not question.strip():
            raise InvalidInputError(f"{path}:{number}: 'question' must be a non-empty string")
        key = " ".join(question.lower().split())
        if key not in seen:
            seen.add(key)
            out.append(question.strip())
    return out


def record_of(answer: Answer, settings: Settings) -> dict[str, Any]:
    """A training record from an answer the tool gave: its prompt as the RAFT records render
    it, its checked text and citations as the target."""
    hits = answer.passages
    messages = build_messages(
        answer.question,
        hits,
        settings.answer_max_chars_per_passage,
        settings.answer_model_may_abstain,
        example=settings.answer_example,
    )
    cited = [c.n for c in answer.citations]
    target = json.dumps({"answer": answer.answer, "citations": cited}, ensure_ascii=False)
    digest = hashlib.sha256(answer.question.encode()).hexdigest()[:12]
    return {
        "id": f"log-{digest}",
        "pair_id": None,
        "messages": [*messages, {"role": "assistant", "content": target}],
        "oracle_rank": cited[0],
        "negative": False,
        "passages": [h.model_dump() for h in hits],
        "quote": [s for e in answer.evidence for s in e.sentences],
        "source": answer.citations[0].source,
        "kind": "log",
        "model": answer.model,
    }


def answer_candidates(
    settings: Settings,
    base: str,
    path: Path,
    progress: bool = True,
    threads: int | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(records, counts) for the questions of ``path``, answered with ``base`` (no
    adapter: the current pipeline, not an earlier tuning) on ``threads`` torch threads
    (default: ``generator_threads``)."""
    questions = read_questions(path)
    counts: Counter[str] = Counter(read=len(questions))
    update = {"generator_model": base, "generator_adapter": None}
    if threads:
        update["generator_threads"] = threads
    run = settings.model_copy(update=update)
    records: list[dict[str, Any]] = []
    with Runtime(run) as runtime:
        if settings.qa_holdout_questions is not None:
            holdout = load_holdout_questions(settings.qa_holdout_questions)
            embed = runtime.encoders.dense.embed_documents
            closest = closest_holdout([_Question(q) for q in questions], holdout, embed)
            near = {
                q
                for q, (_, cosine) in zip(questions, closest, strict=True)
                if cosine >= settings.qa_max_holdout_similarity
            }
            counts["near_eval_dropped"] = len(near)
            questions = [q for q in questions if q not in near]
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(
                total=len(questions), unit="question", desc="log candidates", file=sys.stderr
            )
        try:
            for question in questions:
                answer = answer_question(runtime, question)
                if answer.answered and answer.citations:
                    records.append(record_of(answer, settings))
                else:
                    counts["abstained"] += 1
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
    counts["kept"] = len(records)
    return records, dict(counts)
