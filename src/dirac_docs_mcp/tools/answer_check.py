"""The checks one generated answer must pass before anyone sees it (pure: no model, no
index, so the dev evaluation can replay them offline on stored generations).

:func:`check_answer` splits the answer into sentences, keeps a sentence only when a passage
supports it (:mod:`.support`), makes it cite every model-cited passage that does (else the
best other), and says why nothing can be returned: a refusal, the instructions or the
question echoed back, a sentence cut at a bound or broken off by the model, no supported
sentence, a supported sentence
said away from what the question asks (anchored share), or the asked number/option/command
missing (:func:`asked_kind`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .support import (
    Passage,
    Term,
    anchored_share,
    dangles,
    echoes,
    is_finished,
    repeats_question,
    says_unknown,
    specific_terms,
    split_sentences,
    strip_markers,
    support,
    term_in,
)

# what a question asks for, recognised from its wording; the answer must then give one
_ASKS_NUMBER = re.compile(
    r"\bhow (many|much|long|often|large|big|frequently)\b|\b(which|what) port\b|"
    r"\bafter how\b|\bwhat (size|number|limit|timeout)\b",
    re.IGNORECASE,
)
_ASKS_OPTION = re.compile(
    r"\b(which|what) (\w+ ){0,2}(options?|settings?|parameters?|attributes?|flags?|"
    r"variables?|fields?|keys?|switch(es)?|values?)\b|\bname of the\b",
    re.IGNORECASE,
)
_ASKS_COMMAND = re.compile(
    r"\b(which|what) (\w+ ){0,2}(commands?|scripts?|tools?|sub-?commands?)\b|"
    r"\bis there a (\w+ ){0,2}command\b",
    re.IGNORECASE,
)


def asked_kind(question: str) -> str | None:
    """number, option or command when the question asks for one; None otherwise."""
    if _ASKS_COMMAND.search(question):
        return "command"
    if _ASKS_OPTION.search(question):
        return "option"
    if _ASKS_NUMBER.search(question):
        return "number"
    return None


def _gives(kind: str, term: Term) -> bool:
    if kind == "number":
        return term.kind == "number"
    if kind == "command":
        return term.kind in ("identifier", "flag") and (
            "-" in term.text or "_" in term.text or term.text.startswith("dirac")
        )
    return term.kind in ("identifier", "quoted", "flag", "path")


@dataclass
class CheckedSentence:
    text: str  # without markers
    passages: list[int] = field(default_factory=list)  # the [n]s that support it
    evidence: dict[int, list[str]] = field(default_factory=dict)  # [n] -> verbatim sentences
    problem: str | None = None  # why it was dropped


@dataclass
class AnswerCheck:
    """The verdict on one generated answer against its passages (pure, replayable)."""

    kept: list[CheckedSentence]
    dropped: list[CheckedSentence]
    problem: str | None = None  # why nothing can be returned (None: answer)
    anchored: float | None = None  # best anchored share of a kept sentence (see support)

    @property
    def text(self) -> str:
        return " ".join(s.text + " " + "".join(f"[{n}]" for n in s.passages) for s in self.kept)


def check_answer(
    question: str,
    text: str,
    declared: list[int],
    passages: list[Passage],
    min_window_share: float,
    check_asked_type: bool = True,
    instructions: str = "",
    evidence_sentences: int = 2,
    cut_at_bound: bool = False,
    min_anchored_share: float = 0.0,
) -> AnswerCheck:
    """Split ``text`` into sentences and keep those a passage supports. A kept sentence
    cites every passage the model cited for it that supports it; when none of those does,
    the one other passage that supports it best. ``declared`` are the citation numbers the
    model gave outside the text (they count for every sentence). ``cut_at_bound``: the
    generation stopped at a bound (tokens, time, the answer's length), so a last sentence
    that does not end as sentences end was cut, not finished by the model."""
    raw = (text or "").strip()
    if says_unknown(raw):
        return AnswerCheck([], [], "the model found no answer in the passages")
    if instructions and echoes(raw, instructions):
        return AnswerCheck([], [], "the model repeated its instructions instead of answering")
    if repeats_question(raw, question):
        return AnswerCheck([], [], "the model repeated the question instead of answering")
    kept: list[CheckedSentence] = []
    dropped: list[CheckedSentence] = []
    sentences = split_sentences(raw)
    for i, sentence in enumerate(sentences):
        clean, markers = strip_markers(sentence)
        if not clean:
            continue
        last = i == len(sentences) - 1
        if cut_at_bound and last and not is_finished(sentence):
            dropped.append(CheckedSentence(clean, problem="unfinished"))
            continue
        if dangles(clean, last):
            dropped.append(CheckedSentence(clean, problem="fragment"))
            continue
        if repeats_question(clean, question) or says_unknown(clean):
            dropped.append(CheckedSentence(clean, problem="adds nothing"))
            continue
        verdicts = {
            n: support(clean, passages[n - 1], evidence_sentences)
            for n in range(1, len(passages) + 1)
        }
        backing = {n: v for n, v in verdicts.items() if v.supported(min_window_share)}
        if not backing:
            dropped.append(CheckedSentence(clean, problem="not supported by a passage"))
            continue
        model_cited = [n for n in dict.fromkeys(markers + list(declared or [])) if n in backing]
        if not model_cited:  # re-cite: the best-supporting passage, earliest rank on ties
            model_cited = [
                max(backing, key=lambda n: (backing[n].window_share, backing[n].word_share, -n))
            ]
        kept.append(
            CheckedSentence(clean, model_cited, {n: backing[n].evidence for n in model_cited})
        )
    if not kept:
        reasons = {d.problem for d in dropped}
        if reasons == {"unfinished"}:
            return AnswerCheck(
                [], dropped, "the answer was cut off before its first sentence ended"
            )
        if reasons <= {"unfinished", "fragment"}:
            return AnswerCheck([], dropped, "the model's answer breaks off mid-sentence")
        return AnswerCheck(
            [], dropped, "no sentence of the model's answer is supported by the passages"
        )
    anchored = max(
        anchored_share(s.text, question, passages[n - 1]) for s in kept for n in s.passages
    )
    if anchored < min_anchored_share:
        return AnswerCheck(
            [],
            kept + dropped,
            "the passages that support the answer do not say it about what the question asks",
            anchored,
        )
    if check_asked_type:
        kind = asked_kind(question)
        if kind is not None:
            asked = {t.text.lower() for t in specific_terms(question)}
            given = [
                t
                for s in kept
                for t in specific_terms(s.text)
                if t.text.lower() not in asked
                and _gives(kind, t)
                and any(term_in(t, passages[n - 1].normalized) for n in s.passages)
            ]
            if not given:
                return AnswerCheck(
                    [],
                    kept + dropped,
                    f"the passages do not give the {kind} the question asks for",
                    anchored,
                )
    return AnswerCheck(kept, dropped, anchored=anchored)
