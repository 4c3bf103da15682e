"""Quality gates for synthetic Q-A pairs, pure functions (no model, no I/O).

Each gate returns a reason string when a pair fails it, so a run can count rejections by
cause. The embedding-based de-duplication lives in :class:`QuestionDeduper`, which is
given vectors by its caller (the run embeds with the index's dense encoder).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .support import (
    Passage,
    Term,
    anchored_share,
    claim_words,
    content_words,
    dangles,
    phrase_share,
    says_unknown,
    specific_terms,
    split_sentences,
    support,
    term_in,
)

QUESTION_MIN_CHARS = 12
QUESTION_MAX_CHARS = 200  # also the maxLength of the schema the model is held to
QUESTION_MIN_WORDS = 4
ANSWER_MIN_CHARS = 2
ANSWER_MAX_CHARS = 320  # also the maxLength of the schema the model is held to

# the prompt's question templates write the subject as "…" ('a "What does … do?" question'):
# a question that still holds an ellipsis copied the template and names nothing (issue 14
# labelled one such pair; the other gates cannot see it, its answer came from the chunk)
_TEMPLATE_ELLIPSIS = re.compile(r"…|\.\.\.")

# a question or answer about the prompt itself rather than about DIRAC
_ABOUT_PROMPT = re.compile(
    r"\b(the|this|above|given|provided|following) (passage|text|excerpt|context|snippet|"
    r"paragraph|document)s?\b|\bthe author\b|\bas an ai\b|\blanguage model\b|"
    r"\bquestion[- ]answer pairs?\b|\bjson\b",
    re.IGNORECASE,
)


def schema_problem(question: str, answer: str) -> str | None:
    """Why a pair is not a usable training example, or None.

    A real question (starts with a capital, ends with '?', 4+ words, bounded length) and
    a non-empty bounded answer that is neither a refusal nor the question echoed back."""
    q = " ".join((question or "").split())
    a = " ".join((answer or "").split())
    if not q:
        return "empty question"
    if not a:
        return "empty answer"
    if not q.endswith("?"):
        return "question does not end with '?'"
    if len(q) < QUESTION_MIN_CHARS or len(q.split()) < QUESTION_MIN_WORDS:
        return "question too short"
    if len(q) > QUESTION_MAX_CHARS:
        return "question too long"
    if _TEMPLATE_ELLIPSIS.search(q):
        return "question holds the template's placeholder '…'"
    if len(a) < ANSWER_MIN_CHARS:
        return "answer too short"
    if len(a) > ANSWER_MAX_CHARS:
        return "answer too long"
    if says_unknown(a):
        return "answer is a refusal"
    if a.rstrip("?").lower() == q.rstrip("?").lower():
        return "answer repeats the question"
    sentences = split_sentences(a)
    if any(dangles(x, i == len(sentences) - 1) for i, x in enumerate(sentences)):
        # the answer tool's fragment check: a model fine-tuned on "…so they pick up the"
        # learns to stop mid-sentence (9 of the 197 labelled pairs; 6 unfaithful)
        return "answer breaks off mid-sentence"
    answer_words = set(content_words(a))
    if not answer_words:
        return "answer has no content words"
    if answer_words <= set(content_words(q)):
        return "answer adds nothing to the question"
    return None


def about_prompt(question: str, answer: str) -> bool:
    """True for pairs about the prompt ("what does the passage say…") instead of DIRAC."""
    return bool(_ABOUT_PROMPT.search(question or "") or _ABOUT_PROMPT.search(answer or ""))


def grounding_score(answer: str, chunk_text: str) -> float:
    """Share of the answer's content words (stemmed, glue words excluded) that occur in the
    chunk. 1.0 = every claim word is in the source; a hallucinated answer scores low."""
    words = claim_words(answer)
    if not words:
        return 0.0
    source = set(content_words(chunk_text))
    return sum(1 for w in words if w in source) / len(words)


class QuestionDeduper:
    """Keeps the questions accepted so far (their unit vectors) and rejects a new one whose
    cosine similarity to any of them reaches ``threshold``. Exact repeats (after case and
    space folding) are caught without a vector."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._texts: set[str] = set()

    def __len__(self) -> int:
        return len(self._texts)

    @staticmethod
    def _key(question: str) -> str:
        return " ".join(question.lower().split()).rstrip("?").strip()

    @staticmethod
    def _unit(vector: Sequence[float]) -> np.ndarray:
        array = np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(array))
        return array / norm if norm > 0 else array

    def closest(self, vector: Sequence[float]) -> float:
        """The highest cosine similarity to an accepted question (-1 when there is none)."""
        if not self._matrix.size:
            return -1.0
        return float(np.max(self._matrix @ self._unit(vector)))

    def is_duplicate(self, question: str, vector: Sequence[float] | None) -> bool:
        if self._key(question) in self._texts:
            return True
        return vector is not None and self.closest(vector) >= self.threshold

    def add(self, question: str, vector: Sequence[float] | None) -> None:
        self._texts.add(self._key(question))
        if vector is not None:
            unit = self._unit(vector)[None, :]
            self._matrix = unit if not self._matrix.size else np.vstack([self._matrix, unit])


@dataclass
class Faithfulness:
    """How the chunk supports a pair, from :mod:`.support` (the checker answer_question uses).

    ``missing``: the answer's specific terms (numbers, option/component names, commands,
    flags, paths, quoted values) and the question's, that the chunk does not contain;
    ``window_share``: the lowest, over the answer's sentences, of the share of its content
    words found together in a few consecutive chunk sentences; ``phrase_share``: the share
    of the answer's content-word bigrams found as bigrams in the chunk; ``anchored_share``:
    the lowest, over the answer's sentences, of the share of the sentence's and the
    question's content words found together in one window of the chunk (is the sentence
    said *about what was asked*? A sentence copied from elsewhere in the chunk has a window
    share of 1 and a low anchored share); ``evidence``: the verbatim chunk sentences that
    support the answer."""

    missing: list[str]
    window_share: float
    phrase_share: float
    evidence: list[str] = field(default_factory=list)
    anchored_share: float = 1.0

    def passes(
        self,
        max_missing: int,
        min_window_share: float,
        min_phrase_share: float,
        min_anchored_share: float = 0.0,
    ) -> bool:
        return (
            len(self.missing) <= max_missing
            and self.window_share >= min_window_share
            and self.phrase_share >= min_phrase_share
            and self.anchored_share >= min_anchored_share
        )


# words that state a value's status; a pair may use one only where its chunk does
STATUS_WORDS = ("default", "mandatory", "required", "deprecated", "obsolete")


def faithfulness(question: str, answer: str, chunk_text: str, context: str = "") -> Faithfulness:
    """Score a pair against its chunk (``context``: the section breadcrumb and path, which
    belong to what the chunk says)."""
    passage = Passage(chunk_text, context)
    missing: list[str] = []
    windows: list[float] = []
    anchored: list[float] = []
    evidence: list[str] = []
    for sentence in split_sentences(answer) or [answer]:
        result = support(sentence, passage)
        if not claim_words(sentence):
            continue
        windows.append(result.window_share)
        anchored.append(anchored_share(sentence, question, passage))
        missing += [m for m in result.missing if m not in missing]
        evidence += [e for e in result.evidence if e not in evidence]
    # what the question presupposes ("the 'CommandXYZ' command") must be there too
    for term in specific_terms(question):
        if not term_in(term, passage.normalized) and term.text not in missing:
            missing.append(term.text)
    # "the default is X" over a chunk that gives X as an example: a status word is a claim
    # about the value the answer gives, so the chunk must say it beside that value (its
    # line, the comment lines just above it, its table's column); an answer without a value
    # of its own needs the word beside the sentences that support it
    values = [t for t in specific_terms(answer) if not term_in(t, _norm_text(question))]
    near = _near_evidence(passage, evidence)
    for word in STATUS_WORDS:
        pattern = re.compile(rf"\b{word}s?\b", re.IGNORECASE)
        if not pattern.search(question + " " + answer):
            continue
        said = [_beside(chunk_text, v, pattern) for v in values if term_in(v, passage.normalized)]
        if said and any(said) or not said and pattern.search(near):
            continue
        if not _quoted_status(question + "\n" + answer, pattern, passage.normalized):
            missing.append(word)
    return Faithfulness(
        missing=missing,
        window_share=min(windows) if windows else 0.0,
        phrase_share=phrase_share(answer, passage, context=context),
        evidence=evidence,
        anchored_share=min(anchored) if anchored else 0.0,
    )


def _norm_text(text: str) -> str:
    return Passage(text).normalized


def _beside(chunk_text: str, value: Term, word: re.Pattern) -> bool:
    """Whether ``word`` is said beside ``value`` in the chunk: on a line that holds the value,
    in the comment lines right above it ("# By default 300." over "Time = 300"), or as a
    column of the table whose row holds it ("Name | Default | ...")."""
    lines = chunk_text.splitlines()
    header = None
    for i, line in enumerate(lines):
        if "|" in line and header is None:
            header = line  # a table's first row names its columns
        elif "|" not in line:
            header = None
        if not term_in(value, _norm_text(line)):
            continue
        if header is not None and word.search(header):
            return True
        if _says(line, value, word):
            return True
        j = i - 1
        while j >= 0 and lines[j].lstrip().startswith("#"):
            if _says(lines[j], value, word):
                return True
            j -= 1
    return False


def _says(line: str, value: Term, word: re.Pattern) -> bool:
    """``line`` gives ``value`` the status ``word``: it has the word, and where the word is
    bracketed after a name ("INFO (default), DEBUG") that name is the value."""
    bracketed = re.search(r"([\w.-]+)\s*\(\s*" + word.pattern + r"\s*\)", line, re.I)
    if bracketed:
        return term_in(value, _norm_text(bracketed.group(1)))
    return bool(word.search(line))


def _quoted_status(text: str, word: re.Pattern, normalized_chunk: str) -> bool:
    """Whether a status word is used as the chunk uses it: with the words on both sides of
    it ("options are required to configure") as they stand in the chunk."""
    words = re.findall(r"[a-z0-9_]+", _norm_text(text))
    for i in range(1, len(words) - 1):
        if word.fullmatch(words[i]):
            phrase = " ".join(words[i - 1 : i + 2])
            if re.search(r"(?<![\w])" + re.escape(phrase) + r"(?![\w])", normalized_chunk):
                return True
    return False


def _near_evidence(passage: Passage, evidence: list[str]) -> str:
    """The supporting sentences and the sentence on each side of them (an option's
    description is often the comment line above it or the table cell beside it)."""
    wanted = set(evidence)
    keep: set[int] = set()
    for i, sentence in enumerate(passage.sentences):
        if sentence in wanted:
            keep |= {i - 1, i, i + 1}
    n = len(passage.sentences)
    return "\n".join(passage.sentences[i] for i in sorted(keep) if 0 <= i < n)


def support_messages(question: str, answer: str, chunk_text: str) -> list[dict]:
    """The judge's prompt: does the passage support this answer? Its yes-probability is
    ``p_supported`` (when ``qa_judge_model`` is set)."""
    return [
        {"role": "system", "content": "You check whether a passage supports an answer."},
        {
            "role": "user",
            "content": f"Passage:\n{chunk_text}\n\nQuestion: {question}\nAnswer: {answer}\n\n"
            "Does the passage state everything this answer says? Answer yes or no.",
        },
    ]
