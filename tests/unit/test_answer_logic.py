"""Citation parsing and abstention rules of answer_question, on crafted model outputs."""

from __future__ import annotations

from dirac_docs_mcp.schemas import SearchHit
from dirac_docs_mcp.tools.answer import (
    answer_schema,
    build_messages,
    cited_numbers,
    says_unknown,
    strip_bad_markers,
)


def test_citations_only_name_passages_in_the_prompt():
    assert cited_numbers("Use [2] and [1], see [2].", [3], 3) == [2, 1, 3]
    assert cited_numbers("As [7] says [0]", [9, 2], 3) == [2]
    assert strip_bad_markers("see [4] and [1]", 3) == "see  and [1]"


def test_schema_constrains_citation_numbers():
    schema = answer_schema(3)
    assert schema["properties"]["citations"]["items"]["enum"] == [1, 2, 3]
    assert schema["required"] == ["answer", "citations"]


def test_unknown_answers_are_detected():
    assert says_unknown("I don't know.")
    assert says_unknown("The passages do not mention a retry limit.")
    assert says_unknown("  ")
    assert not says_unknown("Run dirac-proxy-init -g dirac_user [1].")


def test_prompt_numbers_passages_with_their_source():
    hit = SearchHit(
        rank=1, text="x" * 50, source="a/b.rst", section="A › B", score=1.0, chunk_id="c", link="l"
    )
    messages = build_messages("What?", [hit], max_chars_per_passage=10)
    user = messages[-1]["content"]
    assert "[1] A › B (a/b.rst)" in user and "x" * 10 + "…" in user and "Question: What?" in user


def test_the_unknown_rule_is_only_given_when_the_model_may_abstain():
    hit = SearchHit(
        rank=1, text="text", source="a.rst", section="A", score=1.0, chunk_id="c", link="l"
    )
    with_rule = build_messages("What?", [hit], 100, model_may_abstain=True)
    without = build_messages("What?", [hit], 100, model_may_abstain=False)
    assert "I don't know" in with_rule[0]["content"] and "I don't know" in with_rule[1]["content"]
    assert all("I don't know" not in m["content"] for m in without)
    assert "Question: What?" in without[1]["content"]
