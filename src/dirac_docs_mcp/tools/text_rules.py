"""Text rules more than one tool applies to model output."""

from __future__ import annotations

import re

#: a reply that says the documentation does not hold the answer ("I don't know", "not
#: mentioned in", "the passages do not ..."): the union of what tools/answer.py and
#: tools/qa_gates.py each recognised before
NO_ANSWER = re.compile(
    r"\b(i (do not|don't) know|not (mentioned|covered|specified|provided|stated|found)|"
    r"(passages|documentation|context) (do|does) not)\b",
    re.IGNORECASE,
)
