"""Pseudo-queries for tuning the retriever: what each kind cuts from a chunk, and what it
leaves in the positive passage."""

from __future__ import annotations

import random

from dirac_docs_mcp.store import StoredChunk
from dirac_docs_mcp.tuning.pseudo_queries import (
    command_pairs,
    crop_pairs,
    option_pairs,
    pseudo_queries,
    split_pairs,
    title_query,
)


def chunk(text: str, source: str = "guide/a.rst", breadcrumb=None, position: int = 0):
    return StoredChunk(
        id=f"{source}#{position}",
        text=text,
        source=source,
        section=" › ".join(breadcrumb or []),
        breadcrumb=list(breadcrumb or []),
        position=position,
        page=None,
        root="/docs",
    )


AGENT = chunk(
    "The StalledJobAgent hunts for stalled jobs in the Job database.\n\n"
    "Name | Description | Example\n"
    "FailedTimeHours | How much time in hours pass before a stalled job is declared as failed | "
    "FailedTimeHours = 6\n"
    "StalledTimeHours | How much time in hours pass before running job is declared as stalled | "
    "StalledTimeHours = 2\n"
    "PollingTime | Seconds | PollingTime = 120",
    source="Systems/WorkloadManagement/Agents/StalledJobAgent/index.rst",
    breadcrumb=[
        "Systems / WorkloadManagement / <INSTANCE> / Agents / StalledJobAgent - Sub-subsection"
    ],
)


def test_an_option_table_yields_one_query_per_described_option():
    pairs = option_pairs(AGENT)
    assert [p.question for p in pairs] == [
        "How much time in hours pass before a stalled job is declared as failed",
        "How much time in hours pass before running job is declared as stalled",
    ]  # "Seconds" is too short to ask anything
    stalled = pairs[1]
    # the description is cut out of the positive; the option's name and its neighbours stay
    assert "declared as stalled" not in stalled.positive
    assert "StalledTimeHours |" in stalled.positive and "FailedTimeHours" in stalled.positive
    assert stalled.positive.startswith(AGENT.source + "\n")  # the head the index embeds
    assert {p.kind for p in pairs} == {"option"} and pairs[0].chunk_id == AGENT.id


def test_a_cfg_comment_describes_the_option_below_it():
    cfg = chunk(
        "Agents\n{\n  JobCleaningAgent\n  {\n    # how many days a deleted job is kept before it "
        "is removed\n    RemoveDelay = 7\n    # See http://dirac.readthedocs.io\n    Other = 1\n"
        "    Bare = 2\n  }\n}",
        source="DIRAC/ConfigTemplate.cfg",
    )
    pairs = option_pairs(cfg)
    assert [p.question for p in pairs] == [
        "how many days a deleted job is kept before it is removed"
    ]
    assert "RemoveDelay = 7" in pairs[0].positive and "deleted job" not in pairs[0].positive


COMMAND = chunk(
    "Create a proxy from your user certificate.\n\nUsage:\n  dirac-proxy-init [options]\n\n"
    "Options:\n  -g --group <group>     DIRAC group to embed in the proxy",
    source="commands/dirac-proxy-init.txt",
)


def test_a_command_page_yields_its_synopsis_as_the_query():
    pairs = command_pairs(COMMAND)
    assert [(p.question, p.kind) for p in pairs] == [
        ("Create a proxy from your user certificate", "command")
    ]
    positive = pairs[0].positive
    assert "Create a proxy" not in positive and "dirac-proxy-init [options]" in positive
    # not the first chunk of the page, or not a command's file name: no command query
    assert command_pairs(chunk(COMMAND.text, COMMAND.source, position=1)) == []
    assert command_pairs(chunk(COMMAND.text, "guide/Proxies.txt")) == []


def test_a_cropped_sentence_leaves_the_rest_of_its_chunk():
    text = (
        "A pilot may run several jobs one after the other while it has time left on the "
        "worker node. This is called filling mode and increases the efficiency of pilots. "
        "Pilots send their logs to the central logging service so administrators can debug."
    )
    found = {crop_pairs(chunk(text), random.Random(seed))[0].question for seed in range(8)}
    assert len(found) > 1  # the seed chooses the sentence
    pair = crop_pairs(chunk(text), random.Random(0))[0]
    assert pair.question in text and pair.question not in pair.positive
    rest = text.replace(pair.question, "").split()
    assert pair.positive.split()[-len(rest) :] == rest[-len(rest) :]
    assert crop_pairs(chunk("One sentence only, with several words in it."), random.Random(0)) == []


def test_titles_are_cleaned_headings():
    assert title_query(AGENT) == "Agents StalledJobAgent"
    assert title_query(chunk("x", breadcrumb=["Pilots", "Filling mode"])) == "Filling mode"
    assert title_query(chunk("x", breadcrumb=[])) is None


def test_a_query_given_by_two_chunks_is_kept_once_and_the_split_is_by_chunk():
    twin = chunk(AGENT.text, source="other/StalledJobAgent/index.rst", breadcrumb=AGENT.breadcrumb)
    pairs = pseudo_queries([AGENT, twin, COMMAND])
    questions = [p.question for p in pairs]
    assert len(questions) == len(set(questions))
    assert {p.source for p in pairs if p.kind == "option"} == {AGENT.source}
    many = [chunk(f"text {i}", source=f"d/{i}.rst") for i in range(20)]
    from dirac_docs_mcp.tuning.pseudo_queries import TrainingPair

    pairs = [TrainingPair(f"q{i}{j}", "p", c.id, c.source, "crop") for i, c in enumerate(many)
             for j in range(2)]  # fmt: skip
    train, validation = split_pairs(pairs, 0.1, seed=3)
    assert len({p.chunk_id for p in validation}) == 2 and len(validation) == 4
    assert not {p.chunk_id for p in train} & {p.chunk_id for p in validation}
    assert split_pairs(pairs, 0.1, seed=3) == (train, validation)
