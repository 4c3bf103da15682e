"""Question kinds for generate_qa_pairs: which kinds to ask of a chunk, and which kind a
generated question is. Pure functions (no model).

Five kinds, the questions DIRAC users ask:

- ``howto``: how to do a task ("How do I register a file in the DFC?")
- ``config``: which option controls something, or its default ("Which option sets ...?")
- ``command``: what a command does, how to call it, its flags
- ``troubleshooting``: why something fails, what to do when it does
- ``concept``: what a component, service or term is ("What is the Matcher?")

**Asking (per chunk).** :func:`choose_kinds` scores the chunk's text for each kind by what
it contains: an option table or ``Name = value`` lines invite config questions, a
``dirac-*`` command, a shell prompt or ``--flags`` invite command questions, errors and
failures invite troubleshooting, numbered steps and "you need to / to do X" invite how-to
questions. The best-scoring kinds are asked, one per requested pair, best first; concept
fills in only when fewer kinds score (or as the second question when one kind dominates),
so "What is …?" stays the exception.

**Labelling (per pair).** :func:`question_kind`: the kind the prompt asked for when the
question's form fits it (its pattern below); otherwise the first kind whose form the
question fits, in the order troubleshooting, command, config, howto, concept; otherwise
``other``. The form is the judge: a "What is X?" asked as a config question is labelled
concept.
"""

from __future__ import annotations

import re

KINDS = ("howto", "config", "command", "troubleshooting", "concept")

# what to ask for, put in the prompt
KIND_INSTRUCTIONS = {
    "howto": 'a "How do I …?" question about a task or procedure the passage describes, '
    "answered with its steps or command",
    "config": "a question about which configuration option or parameter controls something "
    "(or what its default value is), answered with the option's exact name and value",
    "command": "a question about what a command does or how to run it (its arguments or "
    "flags), answered with the exact command",
    "troubleshooting": 'a "Why …?" or "What should I do when …?" question about a problem, '
    "error or failure the passage explains, answered with its cause or fix",
    "concept": "a question about what a DIRAC component, service or term named in the "
    "passage is or does",
}

# the question's form for each kind
FORMS = {
    "troubleshooting": re.compile(
        r"^why\b|\berrors?\b|\bfail|\bproblem|\bwhat (should|can|must) (i|you|an? \w+) do\b|"
        r"\bwhat happens (if|when)\b|\bnot work|\bstuck\b|\btroubleshoot|\bdebug|\bfix\b|"
        r"\bcannot\b|\bcan't\b|\bunable\b",
        re.IGNORECASE,
    ),
    "command": re.compile(
        r"\bcommands?\b|\bdirac-[a-z]|\bflags?\b|\bswitch(es)?\b|\bcommand[- ]line\b|"
        r"\bargument|(?<![\w-])--?[a-z][\w-]*|\brun(ning)? the\b|\bscript\b",
        re.IGNORECASE,
    ),
    "config": re.compile(
        r"\b(options?|parameters?|settings?|configur\w*|defaults?|values?|attributes?)\b|"
        r"\bCS\b|\bsection\b",
        re.IGNORECASE,
    ),
    "howto": re.compile(
        r"^how (do|can|should|would|could|does|to|is|are)\b|^what (are the )?steps\b|"
        r"^what (do|does|must|should) (i|you|an? \w+) (need|have) to\b|\bin order to\b",
        re.IGNORECASE,
    ),
    "concept": re.compile(
        r"^(what|which|who) (is|are|does|do)\b|\bpurpose\b|\brole\b|\bresponsible\b|"
        r"^what kind\b|\bdifference\b",
        re.IGNORECASE,
    ),
}
_LABEL_ORDER = ("troubleshooting", "command", "config", "howto", "concept")

# the chunk's content for each kind
_ASSIGNMENT = re.compile(r"^\s*[A-Za-z][\w./]*\s*=\s*\S", re.MULTILINE)
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$|^\s*[+=-]{3,}[+=\s-]*$", re.MULTILINE)
_CONFIG_WORDS = re.compile(
    r"\b(default|option|parameter|configuration|setting|CS|/Operations|/Systems|/Resources)\b",
    re.IGNORECASE,
)
_COMMAND = re.compile(r"\bdirac-[a-z][\w-]+|^\s*\$ |(?<![\w-])--[a-z][\w-]+|\busage:", re.I | re.M)
_TROUBLE = re.compile(
    r"\b(error|errors|fail|fails|failed|failure|problem|issue|exception|troubleshoot\w*|"
    r"warning|cannot|can't|stuck|debug)\b",
    re.IGNORECASE,
)
_STEPS = re.compile(
    r"^\s*(\d+[.)]|[*-]|#\.)\s+[A-Z]|\byou (need|have|must|should|can)\b|\bto (do|install|"
    r"configure|set up|create|add|register|submit|enable|run)\b|\bfirst\b|\bthen\b",
    re.IGNORECASE | re.MULTILINE,
)


def kind_scores(text: str) -> dict[str, float]:
    """How strongly the chunk invites each kind (0 = not at all)."""
    text = text or ""
    config = 2 * len(_ASSIGNMENT.findall(text)) + len(_CONFIG_WORDS.findall(text))
    if _TABLE_ROW.search(text):
        config += 2
    return {
        "config": float(config if config >= 3 else 0),
        "command": float(len(_COMMAND.findall(text)) * 2),
        "troubleshooting": float(
            len(_TROUBLE.findall(text)) if len(_TROUBLE.findall(text)) >= 2 else 0
        ),
        "howto": float(len(_STEPS.findall(text)) if len(_STEPS.findall(text)) >= 2 else 0),
        "concept": 1.0,
    }


def choose_kinds(text: str, pairs: int) -> list[str]:
    """One kind per requested pair: the kinds the chunk invites, best first, concept as the
    filler (asked at most once unless nothing else scores)."""
    scores = kind_scores(text)
    ranked = [
        k for k in sorted(KINDS, key=lambda k: (-scores[k], KINDS.index(k))) if k != "concept"
    ]
    chosen = [k for k in ranked if scores[k] > 0][:pairs]
    if len(chosen) < pairs:
        chosen.append("concept")
    while len(chosen) < pairs:
        # a chunk that invites one kind only: ask it again rather than a second "What is"
        chosen.append(chosen[0] if chosen[0] != "concept" else "concept")
    return chosen


def fits(question: str, kind: str) -> bool:
    pattern = FORMS.get(kind)
    return bool(pattern and pattern.search(question or ""))


def question_kind(question: str, asked: str | None) -> str:
    """The documented label: the asked kind if the question's form fits it, else the first
    kind (troubleshooting, command, config, howto, concept) whose form fits, else other."""
    if asked and fits(question, asked):
        return asked
    for kind in _LABEL_ORDER:
        if fits(question, kind):
            return kind
    return "other"


# a question that leans on the passage instead of naming its subject
_VAGUE = re.compile(
    r"\b(it|its|they|them)\b|\b(this|these|that|those|the above|the given|the mentioned)\s+"
    r"(agent|service|component|command|option|section|system|page|document|passage|text|"
    r"tool|module|parameter|feature|file|process|example|step|method|function|class|table|"
    r"setting|value|case|procedure|script|guide|chapter)s?\b|"
    r"\bthe (passage|text|excerpt|snippet|context)\b",
    re.IGNORECASE,
)


def vague_question(question: str) -> bool:
    """True when the question points at something it does not name ("it", "this agent"):
    without the passage it cannot be understood."""
    return bool(_VAGUE.search(question or ""))
