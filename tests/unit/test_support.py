"""The support checker on crafted answers: invented specifics are caught, paraphrases pass,
evidence is verbatim, echoes and cut-off sentences are recognised."""

from __future__ import annotations

from dirac_docs_mcp.tools.answer_check import asked_kind, check_answer
from dirac_docs_mcp.tools.support import (
    Passage,
    dangles,
    echoes,
    is_finished,
    question_coverage,
    repeats_question,
    select_evidence,
    specific_terms,
    split_sentences,
    support,
    term_in,
)

STALLED = Passage(
    'The StalledJobAgent hunts for stalled jobs in the Job database. Jobs in "running" '
    "state not receiving a heart beat signal for more than stalledTime seconds will be "
    'assigned the status "Stalled".\n'
    "Name | Description | Example\n"
    "FailedTimeHours | How much time in hours pass before a stalled job is declared as "
    "failed | FailedTimeHours = 6\n"
    "StalledTimeHours | How much time in hours pass before running job is declared as "
    "stalled | StalledTimeHours = 2",
    "Systems / WorkloadManagement / Agents / StalledJobAgent",
)
PROXY = Passage(
    "To create a proxy, run dirac-proxy-init with the group you want, for example "
    "dirac-proxy-init -g dirac_user. The proxy is stored in /tmp/x509up_u<uid> by default.",
    "User Guide / Getting a proxy",
)
MIN_SHARE = 0.6


def supported(claim: str, passage: Passage) -> bool:
    return support(claim, passage).supported(MIN_SHARE)


def test_specific_terms_find_numbers_identifiers_commands_flags_and_quotes():
    terms = {
        (t.text, t.kind)
        for t in specific_terms("Run dirac-proxy-init -g dirac_user; CheckVersion is 'True'.")
    }
    assert ("dirac-proxy-init", "identifier") in terms
    assert ("-g", "flag") in terms
    assert ("dirac_user", "identifier") in terms
    assert ("CheckVersion", "identifier") in terms
    assert ("True", "quoted") in terms
    # a backticked letter before a hyphen is no flag, a slashed pair is either side
    assert not specific_terms("the `d`-commands")
    assert term_in("Apptainer/Singularity", "runs in singularity", alternatives=True)
    assert not term_in("Systems/WorkloadManagement", "systems only")
    assert term_in("RequestExecutingAgents", "the requestexecutingagent runs")
    assert term_in("dirac login", "use dirac-login to get a token")
    # proper nouns only on the question side, never the sentence's first word
    names = {t.text for t in specific_terms("Can DIRAC post to Slack channels?", True)}
    assert names == {"Slack"}


def test_paraphrase_of_a_passage_is_supported():
    assert supported("A running job without a heart beat is declared Stalled.", STALLED)
    assert supported("StalledTimeHours sets the hours before a running job is stalled.", STALLED)
    assert supported("Use dirac-proxy-init -g dirac_user to create a proxy.", PROXY)


def test_invented_number_is_caught():
    verdict = support("StalledTimeHours is 5 hours by default.", STALLED)
    assert verdict.missing == ["5"]
    assert not verdict.supported(MIN_SHARE)
    # the number that is there passes
    assert supported("StalledTimeHours = 2 hours before a running job is stalled.", STALLED)


def test_invented_option_or_command_is_caught():
    assert not supported("Set MaxStalledHours to change when a job is stalled.", STALLED)
    assert not supported("Create the proxy with dirac-proxy-create -g dirac_user.", PROXY)
    assert not supported("Run dirac-proxy-init --voms to create a proxy.", PROXY)
    assert not supported("The default value is 'control'.", STALLED)


def test_claim_assembled_from_scattered_words_is_not_supported():
    # every word is in the passage, but not together: the window rule rejects it
    long = Passage(
        "Pilots are submitted by the SiteDirector.\n" + "Filler line.\n" * 6 + "Jobs are "
        "matched by the Matcher.\n" + "Filler line.\n" * 6 + "The JobCleaningAgent removes "
        "old jobs."
    )
    verdict = support("Pilots are matched and removed by the SiteDirector.", long)
    assert verdict.word_share == 1.0
    assert verdict.window_share < MIN_SHARE


def test_evidence_is_verbatim_and_covers_the_claim():
    verdict = support("StalledTimeHours = 2: hours before a running job is stalled.", STALLED)
    assert verdict.evidence
    for sentence in verdict.evidence:
        assert sentence in STALLED.text
    assert any("StalledTimeHours = 2" in s for s in verdict.evidence)
    # more sentences asked for than the passage has, words left uncovered: no error
    one = Passage("Jobs are matched by the Matcher.")
    assert select_evidence("Which Matcher option limits jobs per pilot?", one, 3) == [
        "Jobs are matched by the Matcher."
    ]
    picked = select_evidence("How long before a failed stalled job?", STALLED, 1)
    assert len(picked) == 1 and picked[0] in STALLED.text and "FailedTimeHours" in picked[0]


def test_split_sentences_keeps_substrings():
    text = "First one. Second (e.g. this) one!\nA | table | row\n\nLast"
    parts = split_sentences(text)
    assert parts == ["First one.", "Second (e.g. this) one!", "A | table | row", "Last"]
    assert all(p in text for p in parts)


def test_question_coverage_names_the_missing_terms():
    coverage = question_coverage(
        "How do I get DIRAC to post a message in a Slack channel when my jobs finish?",
        [STALLED, PROXY],
    )
    assert coverage.missing_terms == ["Slack"]
    assert coverage.term_share == 0.0
    covered = question_coverage("What does StalledTimeHours control?", [STALLED])
    assert covered.missing_terms == [] and covered.term_share == 1.0


def test_prompt_echo_question_echo_and_unfinished_text():
    instructions = (
        "Answer ONLY from the numbered passages. Cite the passages you use as [1], [2]. "
        "Never invent commands or options. Answer in one to three sentences."
    )
    assert echoes(
        "One to three sentences, citing passages as [1], [2]. Never invent commands or options.",
        instructions,
    )
    assert not echoes("StalledTimeHours sets when a running job is stalled [1].", instructions)
    question = "How do I create a proxy with a group?"
    assert repeats_question("How do I create a proxy with a group?", question)
    assert repeats_question("You create a proxy with a group.", question)
    assert not repeats_question("Run dirac-proxy-init -g dirac_user [1].", question)
    assert repeats_question("dirac-login token", "With dirac-login, can I get a token?")
    assert not repeats_question("dirac-login --token", "With dirac-login, can I get a token?")
    assert is_finished("It is stored in /tmp [1].") and is_finished("Done [2]")
    assert not is_finished("The proxy is stored in the")


def test_check_answer_drops_unsupported_sentences_and_recites():
    question = "How long before a running job is declared stalled?"
    check = check_answer(
        question,
        "StalledTimeHours = 2 hours before a running job is declared stalled [2]. "
        "After that the job is deleted from the MySQL database after 48 hours [1].",
        [],
        [PROXY, STALLED],
        MIN_SHARE,
    )
    assert check.problem is None
    assert [s.passages for s in check.kept] == [[2]]
    assert check.dropped and check.dropped[0].problem == "not supported by a passage"
    assert check.text.endswith("[2]")
    # cited the wrong passage: re-cited to the one that supports it
    recited = check_answer(question, "StalledTimeHours = 2 [1].", [], [PROXY, STALLED], MIN_SHARE)
    assert [s.passages for s in recited.kept] == [[2]]


def test_check_answer_abstains_on_invention_echo_and_missing_asked_detail():
    question = "What is the default value of the ControlMode option of the StalledJobAgent?"
    invented = check_answer(question, "The default value is 'control' [1].", [], [STALLED], 0.6)
    assert invented.problem and not invented.kept
    echo = check_answer(question, question, [], [STALLED], 0.6)
    assert echo.problem and "repeated the question" in echo.problem
    assert asked_kind("How many times can a job be rescheduled?") == "number"
    assert asked_kind("Which option sets the polling time?") == "option"
    assert asked_kind("Is there a command to mount the catalog?") == "command"
    assert asked_kind("Why does DIRAC use pilots?") is None
    # asks for a number; the supported sentence gives none
    no_number = check_answer(
        "How many hours before a stalled job is declared failed?",
        "A stalled job is declared failed once FailedTimeHours have passed [1].",
        [],
        [STALLED],
        0.6,
    )
    assert no_number.problem == "the passages do not give the number the question asks for"
    with_number = check_answer(
        "How many hours before a stalled job is declared failed?",
        "FailedTimeHours = 6: a stalled job is declared failed after 6 hours [1].",
        [],
        [STALLED],
        0.6,
    )
    assert with_number.problem is None


def test_unfinished_last_sentence_dropped_only_when_cut_at_a_bound():
    question = "How long before a running job is declared stalled?"
    text = "StalledTimeHours = 2 hours before a running job is stalled [1]. The job is then"
    cut = check_answer(question, text, [], [STALLED], MIN_SHARE, cut_at_bound=True)
    assert [d.problem for d in cut.dropped] == ["unfinished"] and len(cut.kept) == 1
    # a model that stops by itself after "dirac-proxy-init -g dirac_user" has finished
    done = check_answer(
        "Which command creates a proxy?", "dirac-proxy-init -g dirac_user", [], [PROXY], MIN_SHARE
    )
    assert done.problem is None and done.kept[0].passages == [1]


def test_fragments_the_model_broke_off_are_dropped_even_when_it_stopped_by_itself():
    """The 0.5B ends some answers mid-sentence on its own (no bound reached), and those
    passed the support checks on dev: "This is done by setting the [2]", "by using the",
    "you can use the following Python snippet: [2]." Such a sentence is a fragment."""
    for fragment in (
        "This is done by setting the [2]",
        "you can find out which resources accept your job by using the [1][2][3]",
        "Outside the main loop the worker is checking request status and",
        "To convert your CS you can use the following Python snippet: [2].",
    ):
        assert dangles(fragment, last=True), fragment
    for finished in (
        "StalledTimeHours = 2 hours before a running job is stalled [1].",
        "Use DIRAC 2.4a",
        "Run dirac-proxy-init -g dirac_user",
        "It is off by default.",
        "The log is written to /opt/dirac/runit/WorkloadManagement/JobAgent/log/current",
    ):
        assert not dangles(finished, last=True), finished
    # a colon is a fragment only when nothing follows it
    assert not dangles("Two options control it:", last=False)

    question = "How long before a running job is declared stalled?"
    only = check_answer(question, "StalledTimeHours is set by the [1]", [], [STALLED], MIN_SHARE)
    assert only.problem == "the model's answer breaks off mid-sentence" and not only.kept
    mixed = check_answer(
        question,
        "StalledTimeHours = 2 hours before a running job is stalled [1]. This is done by "
        "setting the [1]",
        [],
        [STALLED],
        MIN_SHARE,
    )
    assert mixed.problem is None and len(mixed.kept) == 1
    assert [d.problem for d in mixed.dropped] == ["fragment"]
    assert "setting the" not in mixed.text


def test_a_sentence_cites_every_model_cited_passage_that_supports_it():
    twin = Passage(STALLED.text, "a copy")
    check = check_answer(
        "How long before a running job is declared stalled?",
        "StalledTimeHours = 2 hours before a running job is declared stalled [1][3].",
        [],
        [STALLED, PROXY, twin],
        MIN_SHARE,
    )
    assert check.kept[0].passages == [1, 3]
    assert set(check.kept[0].evidence) == {1, 3}
    assert check.text.endswith("[1][3]")
