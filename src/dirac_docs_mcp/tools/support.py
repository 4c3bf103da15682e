"""Does a passage support a claim? One lexical checker for answers and Q-A pairs alike.

No model: everything here is string work on the passages the generator was given, so it
costs microseconds and gives the same verdict on every machine. Three ideas:

- **Specific terms decide.** The words that make a claim checkable are its specifics:
  numbers, CamelCase and dotted identifiers (``StalledTimeHours``, ``Resources.Sites``),
  ALL-CAPS names (``JDL``), commands and flags (``dirac-proxy-init``, ``-j``), paths and
  quoted values. A small model invents exactly these ("the default is 'control'", "16GB and
  8 cores"), and fluent glue around them says little. A sentence whose specifics are not in
  the passage is unsupported, however many of its other words the passage has.
- **Support is local.** Beyond the specifics, the sentence's content words must be found
  together in a window of a few consecutive passage sentences, not scattered over the whole
  passage: an answer assembled from a chunk's words elsewhere claims something the chunk
  does not say.
- **Evidence is verbatim.** The supporting sentences returned to the user are substrings of
  the passage, chosen by how much of the claim they cover.

The same module gives the question-side signal (are the question's specific terms in the
passages at all?) and the hygiene checks (prompt echo, question echo, unfinished text).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..stopwords import ENGLISH_STOPWORDS

# --------------------------------------------------------------------------------------
# words
# --------------------------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:[-.][A-Za-z0-9_]+)*|\d+(?:\.\d+)*")
# generic words a paraphrasing answer adds without adding a claim
GLUE_WORDS = frozenset(
    {
        "dirac",
        "used",
        "use",
        "uses",
        "using",
        "allows",
        "allow",
        "also",
        "can",
        "may",
        "one",
        "set",
        "called",
        "known",
        "following",
        "specific",
        "specified",
        "way",
        "purpose",
        "provides",
        "provide",
        "means",
    }
)


def stem(word: str) -> str:
    """A light English stem, enough to match 'jobs'/'job', 'declared'/'declare'."""
    word = word.lower()
    for suffix in ("ies", "es", "s", "ed", "ing", "ly"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> list[str]:
    """Stemmed words that carry meaning: no stopwords, no 1-2 letter words. Dotted and
    hyphenated names (``dirac-proxy-init``, ``Resources.Sites``) also yield their parts."""
    words = []
    for match in _WORD.findall(text or ""):
        parts = [match] + re.split(r"[-.]", match) if re.search(r"[-.]", match) else [match]
        for part in parts:
            low = part.lower()
            if len(low) < 3 and not low.isdigit():
                continue
            if low in ENGLISH_STOPWORDS:
                continue
            words.append(stem(low))
    return words


def claim_words(text: str) -> list[str]:
    """Content words without the glue a paraphrase adds (falls back to all content words)."""
    words = [w for w in content_words(text) if w not in GLUE_WORDS]
    return words or content_words(text)


# --------------------------------------------------------------------------------------
# specific terms
# --------------------------------------------------------------------------------------

_QUOTED = re.compile(r"""(?<![A-Za-z])['"`‘“]([^'"`’”\n]{1,60})['"`’”](?![A-Za-z])""")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w])|(?<![\w.])\d+(?=[A-Za-z%])")
# a flag starts a word: after a space, a bracket or the line start (not "`d`-commands")
_FLAG = re.compile(r"(?:(?<=[\s(\[])|^)--?[A-Za-z][\w-]*")
_PATH = re.compile(r"(?<![\w])(?:~|\.{1,2})?/[\w.$<>{}-]+(?:/[\w.$<>{}-]*)*")
_TOKEN = re.compile(r"[A-Za-z_$][\w$]*(?:[-.:/][\w$]+)*")
# ALL-CAPS words that are ordinary English or too common in these docs to check
_COMMON_CAPS = frozenset({"I", "A", "OK", "DIRAC", "NB", "NOTE", "TODO", "E.G", "I.E"})
# specifics that are this product's own name: present or not, they claim nothing
_PRODUCT = frozenset({"dirac", "diracx", "dirac's"})


def _is_identifier(token: str) -> bool:
    """CamelCase, ALL-CAPS, snake_case, dotted or hyphenated names, words with digits."""
    if token.lower() in _PRODUCT:
        return False
    if "_" in token or "$" in token:
        return True
    if re.search(r"[a-z][A-Z]", token) or re.match(r"^[A-Z][a-z]+[A-Z]", token):
        return True
    # an acronym-led name: MCSimulation, SEType, FTSPlacement (not "URLs", "CEs")
    if re.match(r"^[A-Z]{2,}[a-z]{2,}", token) and len(token) >= 5:
        return True
    core = token.replace(".", "").replace("-", "")
    if core.isupper() and len(core) >= 2 and token not in _COMMON_CAPS:
        return True
    if re.search(r"[A-Za-z]\d|\d[A-Za-z]", token):
        return True
    if "." in token.strip(".") and not token.endswith("."):
        return True
    # commands: dirac-proxy-init, dirac-dms-add-file, condor_submit (two hyphens or more,
    # or any hyphenated word starting with dirac)
    return token.count("-") >= 2 or token.lower().startswith("dirac-")


@dataclass(frozen=True)
class Term:
    """A specific term and its kind: number, identifier, flag, path, quoted or name."""

    text: str
    kind: str


def specific_terms(text: str, proper_nouns: bool = False) -> list[Term]:
    """The checkable specifics of ``text``, in order, without repeats.

    ``proper_nouns`` also takes capitalised words that do not start a sentence
    ("Slack", "Prometheus", "Kubernetes"): a question naming a product the passages never
    mention is not answered by them. Off for answers: a 0.5B capitalises freely."""
    text = re.sub(r"\[\d{1,2}\]", " ", text or "")
    seen: set[str] = set()
    out: list[Term] = []

    def add(value: str, kind: str) -> None:
        value = value.strip().strip(".,;:()[]")
        key = value.lower()
        if not value or key in seen or key in _PRODUCT:
            return
        seen.add(key)
        out.append(Term(value, kind))

    for match in _QUOTED.finditer(text):
        inner = match.group(1).strip()
        # a quoted phrase of many words is prose, not a value; one character is a letter
        if len(inner) > 1 and len(inner.split()) <= 3:
            add(inner, "quoted")
    for match in _FLAG.finditer(text):
        add(match.group(0), "flag")
    for match in _PATH.finditer(text):
        if len(match.group(0)) > 2:
            add(match.group(0), "path")
    sentence_start = True
    for match in _TOKEN.finditer(text):
        token = match.group(0).rstrip(".:/")
        before = text[: match.start()].rstrip()
        sentence_start = not before or before[-1] in ".!?:\n"
        if _is_identifier(token):
            add(token, "identifier")
        elif (
            proper_nouns
            and not sentence_start
            and token[:1].isupper()
            and token.lower() not in ENGLISH_STOPWORDS
            and token not in _COMMON_CAPS
            and len(token) > 2
        ):
            add(token, "name")
    for match in _NUMBER.finditer(text):
        add(match.group(0), "number")
    return out


def normalize(text: str) -> str:
    """Lowercase, markup and whitespace folded, so a term is found however it is set."""
    text = re.sub(r"[`*\\]", "", text or "").lower()
    return " ".join(text.split())


def _found(value: str, normalized_text: str) -> bool:
    return bool(re.search(r"(?<![\w])" + re.escape(value) + r"(?![\w])", normalized_text))


def term_in(term: Term | str, normalized_text: str, alternatives: bool = False) -> bool:
    """Whether ``term`` occurs in an already :func:`normalize`-ed text, as a whole token.

    Spelling variants count: "dirac login" for "dirac-login", a plural for its singular
    ("RequestExecutingAgents"). ``alternatives``: a slashed pair in prose
    ("Apptainer/Singularity", "OS/architecture") is found when one side is; otherwise
    (an answer's "Systems/WorkloadManagement") every side must be."""
    value = normalize(term.text if isinstance(term, Term) else term)
    if not value:
        return True
    if _found(value, normalized_text):
        return True
    variants = {value.replace("-", " "), value.replace(" ", "-"), value.replace("_", " ")}
    if value.endswith("s") and len(value) > 4:
        variants.add(value[:-1])
    if any(v != value and _found(v, normalized_text) for v in variants):
        return True
    if "/" in value.strip("/") and not value.startswith(("/", "~", ".")):
        parts = [p for p in value.split("/") if p]
        hits = [term_in(p, normalized_text) for p in parts]
        return any(hits) if alternatives else all(hits)
    # 1,000 vs 1000; a number glued to its unit (16gb) vs "16 gb"
    if re.fullmatch(r"[\d.,]+", value):
        bare = value.replace(",", "")
        return bool(re.search(r"(?<![\w.])" + re.escape(bare) + r"(?![\d])", normalized_text))
    return False


# --------------------------------------------------------------------------------------
# sentences
# --------------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9\"'`(\[])")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` as verbatim substrings: split at line breaks (table rows,
    bullets, code lines are sentences of their own) and at sentence ends."""
    out: list[str] = []
    for line in (text or "").split("\n"):
        start = 0
        for match in _SENTENCE_END.finditer(line):
            piece = line[start : match.start()].strip()
            if piece:
                out.append(piece)
            start = match.end()
        piece = line[start:].strip()
        if piece:
            out.append(piece)
    return out


_MARKER = re.compile(r"\s*\[(\d{1,2})\]")


def strip_markers(sentence: str) -> tuple[str, list[int]]:
    """The sentence without its [n] markers, and the markers' numbers."""
    numbers = [int(n) for n in _MARKER.findall(sentence)]
    return _MARKER.sub("", sentence).strip(), numbers


# --------------------------------------------------------------------------------------
# support of one claim by one passage
# --------------------------------------------------------------------------------------

# a claim's content words must be found together within this many consecutive passage
# sentences (tables and option lists put a name and its description on adjacent lines)
WINDOW_SENTENCES = 3


@dataclass
class Support:
    """How well one passage supports one claim."""

    specifics: list[str]
    missing: list[str]  # specifics not in the passage
    word_share: float  # share of the claim's content words anywhere in the passage
    window_share: float  # the same, inside the best window of WINDOW_SENTENCES sentences
    evidence: list[str] = field(default_factory=list)  # verbatim passage sentences

    @property
    def specifics_found(self) -> bool:
        return not self.missing

    def supported(self, min_window_share: float) -> bool:
        return self.specifics_found and self.window_share >= min_window_share


class Passage:
    """A passage prepared once for many checks: its sentences and their words."""

    def __init__(self, text: str, context: str = ""):
        self.text = text or ""
        # the breadcrumb and path belong to what the passage says ("Agents / StalledJobAgent")
        self.normalized = normalize(self.text + "\n" + context)
        self.sentences = split_sentences(self.text)
        self.sentence_words = [set(content_words(s)) for s in self.sentences]
        self.words = set(content_words(self.text + "\n" + context))
        self.context_words = set(content_words(context))


def best_window_share(words: Sequence[str], passage: Passage) -> tuple[float, int]:
    """The best share of ``words`` found together in WINDOW_SENTENCES consecutive passage
    sentences (the breadcrumb counts in every window), and where that window starts."""
    if not words:
        return 0.0, 0
    best_share, best_start = 0.0, 0
    n = len(passage.sentences)
    for start in range(max(1, n - WINDOW_SENTENCES + 1)):
        window = set(passage.context_words)
        for k in range(start, min(n, start + WINDOW_SENTENCES)):
            window |= passage.sentence_words[k]
        share = sum(1 for w in words if w in window) / len(words)
        if share > best_share:
            best_share, best_start = share, start
    return best_share, best_start


def anchored_share(claim: str, question: str, passage: Passage) -> float:
    """Is ``claim`` said *about what the question asks*? The share of the claim's and the
    question's content words together in one window of the passage. An answer "20 [2]" to
    "How many jobs a day does LHCb run?" is supported by any passage with a 20 in it; it is
    anchored only where 20 stands beside jobs, day and LHCb."""
    claim_part = claim_words(strip_markers(claim)[0])
    extra = [w for w in claim_words(question) if w not in set(claim_part)]
    return best_window_share(claim_part + extra, passage)[0]


def support(claim: str, passage: Passage, max_evidence: int = 2) -> Support:
    """How ``passage`` supports ``claim`` (markers stripped by the caller or not)."""
    claim, _ = strip_markers(claim)
    terms = specific_terms(claim)
    missing = [t.text for t in terms if not term_in(t, passage.normalized)]
    words = claim_words(claim)
    unique = set(words)
    if not unique:
        return Support([t.text for t in terms], missing, 0.0, 0.0)
    word_share = sum(1 for w in words if w in passage.words) / len(words)
    best_share, best_start = best_window_share(words, passage)
    n = len(passage.sentences)
    evidence = _evidence(
        unique, passage, range(best_start, min(n, best_start + WINDOW_SENTENCES)), max_evidence
    )
    return Support([t.text for t in terms], missing, word_share, best_share, evidence)


def _greedy_cover(
    words: set[str],
    passage: Passage,
    candidates: Iterable[int],
    k: int,
    heavy: frozenset[str] | set[str] = frozenset(),
) -> list[str]:
    """Greedy cover: up to ``k`` passage sentences (returned in passage order) that add most
    of ``words`` not yet covered; a word in ``heavy`` counts double."""
    left = set(words)
    chosen: list[int] = []
    candidates = list(candidates)

    def gain(i: int) -> int:
        hit = passage.sentence_words[i] & left
        return len(hit) + len(hit & heavy)

    while left and candidates and len(chosen) < k:
        best = max(candidates, key=gain)
        if gain(best) <= 0:
            break
        chosen.append(best)
        left -= passage.sentence_words[best]
        candidates.remove(best)
    return [passage.sentences[i] for i in sorted(chosen)]


def _evidence(words: set[str], passage: Passage, indexes: Iterable[int], k: int) -> list[str]:
    """The sentences of the supporting window (all sentences if it is empty) covering most
    of a claim's ``words``."""
    return _greedy_cover(words, passage, list(indexes) or range(len(passage.sentences)), k)


def select_evidence(query: str, passage: Passage, k: int = 2) -> list[str]:
    """The passage's sentences that best cover ``query``'s content words, verbatim, in
    passage order; names and numbers of the query count double (they say what is asked)."""
    words = set(claim_words(query))
    if not words or not passage.sentences:
        return []
    heavy = {stem(t.text.lower()) for t in specific_terms(query, proper_nouns=True)}
    return _greedy_cover(words, passage, range(len(passage.sentences)), k, heavy)


# --------------------------------------------------------------------------------------
# the question side
# --------------------------------------------------------------------------------------


@dataclass
class Coverage:
    """Which of the question's words the passages contain."""

    terms: list[str]  # the question's specific terms (proper nouns included)
    missing_terms: list[str]  # specific terms in no passage
    word_share: float  # share of the question's content words found in some passage
    window_share: float = 0.0  # the same, together in one passage's best sentence window

    @property
    def term_share(self) -> float:
        return 1.0 - len(self.missing_terms) / len(self.terms) if self.terms else 1.0


def question_coverage(question: str, passages: Sequence[Passage]) -> Coverage:
    terms = specific_terms(question, proper_nouns=True)
    missing = [
        t.text
        for t in terms
        if not any(term_in(t, p.normalized, alternatives=True) for p in passages)
    ]
    words = claim_words(question)
    found = set().union(*(p.words for p in passages)) if passages else set()
    share = sum(1 for w in words if w in found) / len(words) if words else 1.0
    window = max((support(question, p, 0).window_share for p in passages), default=0.0)
    return Coverage([t.text for t in terms], missing, share, window)


# --------------------------------------------------------------------------------------
# hygiene
# --------------------------------------------------------------------------------------

_NO_ANSWER = re.compile(
    r"\b(i (do not|don't) know|not (mentioned|covered|specified|provided|stated|found)|"
    r"(passages|documentation|context) (do|does) not)\b",
    re.IGNORECASE,
)


def says_unknown(text: str) -> bool:
    """A refusal ("I don't know", "not mentioned in the passages") or nothing at all."""
    return bool(_NO_ANSWER.search(text or "")) or not (text or "").strip()


def _ngrams(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def echoes(text: str, source: str, n: int = 4) -> bool:
    """Whether ``text`` repeats a run of ``n`` content words of ``source`` (a prompt's
    instructions, say) that make up most of ``text``'s own content."""
    words = content_words(text)
    if len(words) < n:
        return False
    shared = _ngrams(words, n) & _ngrams(content_words(source), n)
    if not shared:
        return False
    covered = {i for i in range(len(words) - n + 1) if tuple(words[i : i + n]) in shared}
    covered_words = {i + k for i in covered for k in range(n)}
    return len(covered_words) / len(words) >= 0.5


def repeats_question(text: str, question: str) -> bool:
    """True when ``text`` adds nothing to the question: all its content words are the
    question's, or it is the question itself."""
    t = " ".join(strip_markers(text or "")[0].lower().split()).rstrip("?.")
    q = " ".join((question or "").lower().split()).rstrip("?.")
    if not t or t == q:
        return True
    asked = normalize(question)
    if any(not term_in(term, asked) for term in specific_terms(text)):
        return False  # it names something the question did not ("--token", "2 hours")
    words = set(claim_words(text))
    return bool(words) and words <= set(claim_words(question))


def is_finished(sentence: str) -> bool:
    """A sentence that ends as sentences end (a stop, a closing quote or bracket, a
    citation) rather than mid-word at a length bound."""
    if re.search(r"\[\d{1,2}\]\W*$", sentence or ""):
        return True  # a model closes with its citation only when it has said its sentence
    s = (sentence or "").rstrip()
    return bool(s) and s[-1] in ".!?)\"'`:;]"


# words no finished English sentence ends on: a sentence that does is a fragment, whatever
# its punctuation ("This is done by setting the [2]", "by using the [1][2][3]" on dev)
_DANGLING = frozenset(
    "the a an of by with from into via using and or than such following your its their".split()
)


def dangles(sentence: str, last: bool = False) -> bool:
    """A fragment the model broke off: its last word cannot end a sentence, or (the
    answer's ``last`` sentence) it announces with a colon what never follows ("use the
    following snippet:")."""
    clean = strip_markers(sentence or "")[0].rstrip().rstrip(".!?;,").rstrip()
    if last and clean.endswith(":"):
        return True
    words = clean.split()
    return bool(words) and words[-1].lower() in _DANGLING


# --------------------------------------------------------------------------------------
# phrase-level support (added for the Q-A faithfulness gate)
# --------------------------------------------------------------------------------------


def phrase_share(claim: str, passage: Passage, n: int = 2, context: str = "") -> float:
    """Share of the claim's runs of ``n`` consecutive content words (stopwords skipped,
    stemmed) that occur as a run in the passage text or in ``context`` (its section
    breadcrumb): phrase-level
    support, where :func:`support`'s word shares are bags of words. An answer assembled
    from a chunk's words in new combinations ("the default of X is Y" from "X ... Y")
    scores low here while its word shares stay high. A claim of fewer than ``n`` content
    words scores 1.0 when those words are all in the passage, else 0.0."""
    words = content_words(strip_markers(claim)[0])
    if len(words) < n:
        return 1.0 if words and all(w in passage.words for w in words) else 0.0
    source: set[tuple[str, ...]] = set()
    for part in (passage.text, context):
        source |= _ngrams(content_words(part), n)
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return sum(1 for g in grams if g in source) / len(grams)
