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
from dataclasses import dataclass

KINDS = ("howto", "config", "command", "troubleshooting", "concept")

# What to ask for, put in the prompt. ``{subject}`` is filled with a name taken from the
# chunk (:func:`chunk_subjects`): a 0.5B told "a question about what a DIRAC component,
# service or term is" wrote "What is a DIRAC component, service or term?" (14 of 40 outputs
# on the seed-14 sample were such echoes), and told "what its default value is" asked for a
# default of every option, inventing one where the chunk gives none ("What is the default
# value of X?" was the commonest question). So each instruction names what to ask about,
# asks for the form wanted, and mentions a default only where the chunk states one.
KIND_INSTRUCTIONS = {
    "howto": 'a "How do I …?" question about a task or procedure the passage describes, '
    "answered with its steps or command",
    "config": "a question about which configuration option or parameter sets a behaviour the "
    "passage describes, answered with the option's exact name",
    "command": "a question about what a command does or how to run it (its arguments or "
    "flags), answered with the exact command",
    "troubleshooting": 'a "Why …?" or "What should I do when …?" question about a problem, '
    "error or failure the passage explains, answered with its cause or fix",
    "concept": 'a "What does … do?" question about a component, service or agent the '
    "passage names, answered with what the passage says it does",
}
# The same kinds about a name the chunk holds. Short on purpose: the 0.5B copies long
# instructions into its answers ("InProcess does or is for").
SUBJECT_INSTRUCTIONS = {
    "config": "a question about what the option {subject} sets",
    "command": "a question about what the command {subject} does",
    "flag": "a question about what the {subject} option of {command} does",
    "argument": "a question about what the {subject} argument of {command} is",
    "concept": 'a "What does {subject} do?" question',
}
# a config question may ask for a default only where the chunk gives the option one
DEFAULT_INSTRUCTION = "a question about what the option {subject} sets or its default value"


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
# a table row: "| a | b |", a "+---+" rule, or the loaders' "Name | Description | Example"
_TABLE_ROW = re.compile(
    r"^\s*\|.*\|\s*$|^\s*[+=-]{3,}[+=\s-]*$|^[^|\n]+\|[^|\n]+\|[^|\n]+$", re.MULTILINE
)
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


def kind_scores(text: str, section: str = "") -> dict[str, float]:
    """How strongly the chunk invites each kind (0 = not at all). A config question needs
    an option the chunk names: told to ask about "which option sets a behaviour" of a chunk
    that names none, the 0.5B echoed the instruction or invented an option."""
    text = text or ""
    subjects = chunk_subjects(text, section)
    options = subjects["config"]
    config = 2 * len(_ASSIGNMENT.findall(text)) + len(_CONFIG_WORDS.findall(text))
    if _TABLE_ROW.search(text):
        # an option table ("Name | Description | Example"): each option named counts
        config += 2 + len(options)
    return {
        "config": float(config if config >= 3 and options else 0),
        # a command question needs a dirac-* command to be about: told to ask "what a
        # command does" of a chunk with a --flag but no command, the 0.5B asked "What is a
        # command in DIRAC?"
        "command": float(
            (len(_COMMAND.findall(text)) + 2 * bool(_COMMAND_NAME.search(section or ""))) * 2
            if subjects["command"]
            else 0
        ),
        "troubleshooting": float(
            len(_TROUBLE.findall(text)) if len(_TROUBLE.findall(text)) >= 2 else 0
        ),
        "howto": float(len(_STEPS.findall(text)) if len(_STEPS.findall(text)) >= 2 else 0),
        "concept": 1.0,
    }


def choose_kinds(text: str, pairs: int, section: str = "") -> list[str]:
    """One kind per requested pair: the kinds the chunk invites, best first, concept as the
    filler (asked at most once unless nothing else scores)."""
    scores = kind_scores(text, section)
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


# --- what each question is about ------------------------------------------------------

# a dirac-* command, not a host of that name ("diracuser@dirac-tuto", "dirac-tuto.cern.ch",
# "--host dirac-tuto")
_COMMAND_NAME = re.compile(
    r"(?<![\w/.@-])(?<!--host )dirac-[a-z][a-z0-9]*(?:-[a-z0-9]+)*(?![\w.-]*\.\w)(?![\w\]-])"
)
# a long flag as a command's help lists it ("  -N --Name <value>  : ..."), at a line's start:
# a flag named in prose ("generated from --help at docs build time") is not described there
_FLAG_NAME = re.compile(r"^\s*(?:-\w,?\s+)?(--[A-Za-z][\w-]+)", re.MULTILINE)
# a command page's "## Arguments" list ("  PFN:      Physical File Name")
_ARGUMENTS = re.compile(r"^#*\s*Arguments\b", re.MULTILINE)
_ARGUMENT_NAME = re.compile(r"^\s{2,}([A-Za-z][\w<>-]*):\s+\S", re.MULTILINE)
# flags every command has, which its page does not describe
_COMMON_FLAGS = frozenset({"--help", "--version"})
_ENV_VAR = re.compile(r"(?<![\w$<])[A-Z][A-Z0-9]*_[A-Z0-9_]*[A-Z0-9](?![\w])")
_ASSIGNED_NAME = re.compile(r"^\s*([A-Za-z<][\w./<>-]*)\s*=\s*\S", re.MULTILINE)
_FIRST_CELL = re.compile(r"^\s*\|?\s*([A-Za-z<][\w./<>-]*)\s*\|", re.MULTILINE)
_CAMEL = re.compile(r"(?<![\w.])[A-Z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*)+(?![\w])")
# a URL: its CamelCase parts ("github.com/DIRACGrid/WebAppDIRAC") are repository and page
# names, not components a user asks about (issue 14's labels had "What does WebAppDIRAC
# do?" from a link). Configuration paths stay: /Systems/.../Agents/StalledJobAgent names one
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+")
_HEADER_WORDS = frozenset(
    {
        "name",
        "option",
        "options",
        "parameter",
        "parameters",
        "description",
        "default",
        "example",
        "value",
        "values",
        "type",
        "key",
        "setting",
        "field",
    }
)
_DEFAULT = re.compile(r"\bdefaults?\b", re.IGNORECASE)
_NOT_COMPONENTS = frozenset({"DiracX", "DIRAC", "JavaScript", "GitHub", "PyPI", "MySQL"})


def _ranked(names: list[str], text: str) -> list[str]:
    """Distinct names, the most frequent first, then in the order the text shows them."""
    counts = {n: names.count(n) for n in names}
    return sorted(counts, key=lambda n: (-counts[n], _position(n, text)))


def _position(name: str, text: str) -> int:
    at = text.find(name)
    return at if at >= 0 else len(text)


def _option_name(raw: str) -> str | None:
    name = raw.strip().rstrip(".:").split("/")[-1]
    if not name or name.startswith("<") or name.lower() in _HEADER_WORDS:
        return None
    # an option is a name (CamelCase, an identifier), not a prose word of a table cell
    if not re.search(r"[A-Z]", name[1:]) and "_" not in name and "." not in name:
        return None
    return name


def chunk_subjects(text: str, section: str = "") -> dict[str, list[str]]:
    """Names a question of each kind can be about, best first: the commands the chunk (or
    its section title: a command's page) shows, its options (``Name = value`` lines, first
    cells of table rows, environment variables), and its components (CamelCase names that
    are not options)."""
    text = text or ""
    commands = _ranked(
        _COMMAND_NAME.findall(section or "") * 2
        + [n for n in _COMMAND_NAME.findall(text) if _run_as_command(n, text)],
        text,
    )
    raw_options = _ASSIGNED_NAME.findall(text) + _FIRST_CELL.findall(text) + _ENV_VAR.findall(text)
    options = _ranked([n for n in map(_option_name, raw_options) if n], text)
    components = _ranked(
        [
            n
            for n in _CAMEL.findall(_URL.sub(" ", text))
            if n not in options and n not in _NOT_COMPONENTS and len(n) > 3
        ],
        text,
    )
    flags = _ranked(
        [f for f in _FLAG_NAME.findall(text) if len(f) > 3 and f not in _COMMON_FLAGS], text
    )
    arguments = _ranked(_ARGUMENT_NAME.findall(text), text) if _ARGUMENTS.search(text) else []
    return {
        "command": commands,
        "flag": flags,
        "argument": arguments,
        "config": options,
        "concept": components,
    }


def _run_as_command(name: str, text: str) -> bool:
    """Whether ``name`` is shown as a command: at a line's start or after a shell prompt
    (``$ ``, ``> ``), in backticks, or followed by a flag. Not a package name in a command
    line ("conda-forge dirac-grid") or prose mentioning it."""
    quoted = re.escape(name)
    return bool(
        re.search(rf"(?:^\s*|[$>]\s+|`){quoted}(?![\w-])", text, re.MULTILINE)
        or re.search(rf"(?<![\w-]){quoted}\s+--?[A-Za-z]", text)
    )


def states_default(text: str, option: str) -> bool:
    """Whether the chunk gives ``option`` a default: "default" on the option's line or in
    the comment lines just above it ("# By default 300." over "Time = 300"), or a table
    with a Default column. Only then may a config question ask for one: asked for the
    default of every option, the 0.5B invented defaults where the chunk has none."""
    lines = (text or "").splitlines()
    if any(_TABLE_ROW.match(line) and _DEFAULT.search(line) for line in lines):
        return True
    named = re.compile(rf"(?<![\w]){re.escape(option)}(?![\w])")
    for i, line in enumerate(lines):
        if named.search(line) and any(_DEFAULT.search(x) for x in lines[max(0, i - 3) : i + 1]):
            return True
    return False


@dataclass(frozen=True)
class Ask:
    """What one question of a chunk must be: its kind, and the instruction the prompt gives."""

    kind: str
    instruction: str


def plan_questions(text: str, pairs: int, section: str = "") -> list[Ask]:
    """The kinds of :func:`choose_kinds`, each with its instruction: about a name the chunk
    holds where it has one (a second question of the same kind takes the next name), the
    generic instruction otherwise; a default is asked for only where the chunk gives the
    option one. A command's second question (or the filler concept question of a command
    page with no component to ask about) is about one of its flags or arguments."""
    subjects = chunk_subjects(text, section)
    commands = subjects["command"]
    flags = [("flag", f) for f in subjects["flag"]] + [
        ("argument", a) for a in subjects["argument"]
    ]
    used: dict[str, int] = {}
    asks = []
    for kind in choose_kinds(text, pairs, section):
        n = used.get(kind, 0)
        names = subjects.get(kind, [])
        wants_flag = (kind == "command" and n >= 1) or (
            kind == "concept" and (n >= len(names) or "command" in used)
        )
        if wants_flag and commands and used.get("flag", 0) < len(flags):
            what, flag = flags[used.get("flag", 0)]
            used["flag"] = used.get("flag", 0) + 1
            instruction = SUBJECT_INSTRUCTIONS[what].format(subject=flag, command=commands[0])
            asks.append(Ask("command", instruction))
            continue
        used[kind] = n + 1
        if n < len(names):
            template = (
                DEFAULT_INSTRUCTION
                if kind == "config" and states_default(text, names[n])
                else SUBJECT_INSTRUCTIONS[kind]
            )
            asks.append(Ask(kind, template.format(subject=names[n])))
        else:
            asks.append(Ask(kind, KIND_INSTRUCTIONS[kind]))
    return asks


def instruction_words() -> str:
    """Every instruction's own words without its subject: a question echoing them
    ("What is a DIRAC component, service or term?") is about the prompt, not the chunk."""
    templates = [*KIND_INSTRUCTIONS.values(), *SUBJECT_INSTRUCTIONS.values(), DEFAULT_INSTRUCTION]
    return " ".join(re.sub(r"\{\w+\}", " ", t) for t in templates)


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
    r"\bthe (passage|text|excerpt|snippet|context)\b|"
    # "What does a component do?": the instruction's words, no name
    r"^what (does|do|is|are) (an?|the) (component|service|agent|command|option|term|tool|"
    r"module|feature|system)s? (do|mean)\b",
    re.IGNORECASE,
)


def vague_question(question: str) -> bool:
    """True when the question points at something it does not name ("it", "this agent"):
    without the passage it cannot be understood."""
    return bool(_VAGUE.search(question or ""))
