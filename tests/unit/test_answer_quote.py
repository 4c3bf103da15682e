"""The quote an answer ends with: which sentences are scored, and how the quote is added.
(The scoring itself runs a real model: tests/integration/test_answer_real.py.)"""

from __future__ import annotations

from dirac_docs_mcp.schemas import SearchHit
from dirac_docs_mcp.tools.answer_quote import (
    Quote,
    already_said,
    candidates,
    quote_messages,
    with_announced,
    with_quote,
)
from dirac_docs_mcp.tools.support import Passage

STALLED = (
    "The StalledJobAgent hunts for stalled jobs in the Job database. Jobs in the Running "
    "state whose pilot has not sent a heartbeat for StalledTimeHours are declared Stalled. "
    "See also. StalledTimeHours | hours before a running job is declared stalled | "
    "StalledTimeHours = 2"
)
PROXY = (
    "To create a proxy with a given group, run dirac-proxy-init -g <group>. "
    "The proxy is stored in /tmp. Jobs in the Running state use it."
)


def hit(rank: int, text: str, section: str) -> SearchHit:
    return SearchHit(
        rank=rank, text=text, source=f"doc{rank}.rst", section=section, score=1.0,
        chunk_id=f"c{rank}", link=f"dirac-docs://doc{rank}.rst",
    )  # fmt: skip


def test_candidates_are_verbatim_sentences_closest_to_the_question_with_their_position():
    hits = [hit(1, STALLED, "Agents › StalledJobAgent"), hit(2, PROXY, "User Guide › Proxy")]
    passages = [Passage(h.text, h.section) for h in hits]
    question = "How many hours without a heartbeat before a Running job is declared stalled?"
    found = candidates(question, hits, passages, per_passage=2)
    assert found, "sentences sharing the question's words are candidates"
    for c in found:
        sentence = passages[c.n - 1].sentences[c.index]
        assert c.sentence == sentence and sentence in hits[c.n - 1].text
        assert c.section == hits[c.n - 1].section
    assert len([c for c in found if c.n == 1]) == 2
    # "See also." shares no word and is too short: never a candidate
    assert all(c.sentence != "See also." for c in found)
    # one a passage: the single sentence covering most question words
    firsts = candidates(question, hits, passages, per_passage=1)
    assert [c.n for c in firsts] == [1, 2]
    assert "heartbeat" in firsts[0].sentence


def test_a_sentence_repeated_in_two_passages_is_scored_once():
    same = "Jobs in the Running state whose pilot has not sent a heartbeat are declared Stalled."
    hits = [hit(1, same, "A"), hit(2, same + " Other text here about proxies.", "B")]
    passages = [Passage(h.text, h.section) for h in hits]
    found = candidates("When is a Running job declared Stalled?", hits, passages, 3)
    assert [c.sentence for c in found].count(same) == 1


def test_the_quote_follows_the_answer_with_its_citation_unless_the_answer_holds_it():
    quote = Quote(2, 0, "StalledTimeHours = 2", -1.5)
    text = with_quote("A job is declared stalled after 2 hours [2].", quote)
    assert text.startswith("A job is declared stalled after 2 hours [2].")
    assert text.endswith('The documentation says [2]: "StalledTimeHours = 2"')
    assert already_said(quote, "It is `StalledTimeHours  = 2` [2].")  # markup, spaces folded
    assert not already_said(quote, "It is 2 hours [2].")


def test_the_scoring_prompt_shows_the_sentence_and_never_the_question():
    messages = quote_messages("Agents › StalledJobAgent", "StalledTimeHours = 2")
    assert len(messages) == 1 and messages[0]["role"] == "user"
    content = messages[0]["content"]
    assert "StalledTimeHours = 2" in content and "Agents › StalledJobAgent" in content
    assert "?" not in content.split("\n")[1]


def test_a_sentence_announcing_a_list_is_quoted_with_the_list():
    text = (
        "Some intro. The job status of a successful job proceeds in the following order:\n\n"
        "- Received,\n- Checking,\n- Done.\n\nJobs which return no heartbeat are Stalled."
    )
    sentence = "The job status of a successful job proceeds in the following order:"
    quoted = with_announced(text, sentence)
    assert quoted in text  # verbatim
    assert quoted.startswith(sentence) and quoted.endswith("- Done.")
    assert "Stalled" not in quoted  # the block ends at the blank line
    assert with_announced(text, "Some intro.") == "Some intro."
    # a colon with nothing after it, or a block too long to quote whole at a line end
    assert with_announced("Run this:", "Run this:") == "Run this:"
    long = "Options:\n" + "\n".join(f"- option{i} does something useful" for i in range(40))
    cut = with_announced(long, "Options:")
    assert cut in long and len(cut) <= 620 and cut.endswith("useful")
