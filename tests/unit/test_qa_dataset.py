"""Issue 14 without models: the faithfulness gate on crafted faithful / invented pairs, the
question kinds, vague questions, the evaluation-question filter, the RAFT target under the
serving schema, and reviewed labels read back."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from dirac_docs_mcp.errors import InvalidInputError
from dirac_docs_mcp.schemas import QAPair
from dirac_docs_mcp.tools.answer import answer_schema
from dirac_docs_mcp.tools.qa_export import (
    NOT_FAITHFUL,
    RAFT_ABSTENTION,
    holdout_filter,
    import_review,
    raft_target,
    read_review_labels,
    training_pairs,
)
from dirac_docs_mcp.tools.qa_gates import faithfulness
from dirac_docs_mcp.tools.qa_kinds import (
    choose_kinds,
    chunk_subjects,
    instruction_words,
    plan_questions,
    question_kind,
    vague_question,
)
from dirac_docs_mcp.tools.support import Passage, echoes, phrase_share

RSS = (
    "The Resource Status System (RSS) keeps the status of the grid resources. Its policies "
    "are evaluated by the ElementInspectorAgent every 30 minutes.\n"
    "The command caches are filled by the CacheFeederAgent. The option onlyCache, when "
    "True, makes a command read only its cache."
)
PILOT = (
    "A pilot is a job submitted by the SiteDirector to a computing element. Once running "
    "on a worker node, the pilot installs DIRAC, checks the environment and then asks the "
    "Matcher for a user job. The JobWrapper runs the user job and uploads its output."
)


def test_invented_values_and_names_fail_while_paraphrase_passes():
    faithful = faithfulness(
        "How often does the ElementInspectorAgent evaluate the RSS policies?",
        "The ElementInspectorAgent evaluates the policies every 30 minutes.",
        RSS,
    )
    assert faithful.missing == [] and faithful.passes(0, 0.6, 0.0)
    # the invented pair: the quoted value and the option are not in the chunk
    invented = faithfulness(
        "What is the default value of the Resource Status System parameter?",
        "The default value for the 'Resource Status System' parameter in the DIRAC "
        "configuration is 'control'.",
        RSS,
    )
    assert "control" in invented.missing
    assert not invented.passes(0, 0.6, 0.0)
    wrong_number = faithfulness(
        "How often does the ElementInspectorAgent evaluate the RSS policies?",
        "The ElementInspectorAgent evaluates the policies every 15 minutes.",
        RSS,
    )
    assert wrong_number.missing == ["15"]
    invented_option = faithfulness(
        "Which option makes a command read only its cache?",
        "The option UseCacheOnly makes a command read only its cache.",
        RSS,
    )
    assert invented_option.missing == ["UseCacheOnly"]
    # the question's presupposition counts too
    invented_subject = faithfulness(
        "What does the onlyCache parameter of the CommandXYZ command do?",
        "The onlyCache option makes a command read only its cache.",
        RSS,
    )
    assert invented_subject.missing == ["CommandXYZ"]


def test_words_of_the_chunk_recombined_fail_the_window_and_phrase_checks():
    # every content word is in the chunk, but the claim joins words from far-apart
    # sentences ("a pilot extracts a JDL" style): low window and phrase shares
    assembled = faithfulness(
        "What does the JobWrapper do?",
        "The JobWrapper is submitted by the SiteDirector and installs the Matcher on the "
        "computing element.",
        PILOT,
    )
    supported = faithfulness(
        "What does the JobWrapper do?",
        "The JobWrapper runs the user job and uploads its output.",
        PILOT,
    )
    assert supported.passes(0, 0.6, 0.5)
    assert supported.phrase_share > assembled.phrase_share
    assert assembled.phrase_share < 0.5
    assert not assembled.passes(0, 0.6, 0.5)


def test_phrase_share_counts_bigrams_of_content_words():
    passage = Passage(PILOT)
    assert phrase_share("the pilot installs DIRAC", passage) == 1.0
    assert phrase_share("DIRAC installs the pilot", passage) == 0.0
    assert phrase_share("Matcher", passage) == 1.0
    assert phrase_share("Kubernetes", passage) == 0.0


OPTIONS = """Parameters of the StalledJobAgent:

+----------------------+---------+---------------------------------+
| Name                 | Default | Description                     |
+======================+=========+=================================+
| StalledTimeHours     | 2       | hours before a job is stalled   |
| FailedTimeHours      | 6       | hours before it is failed       |
+----------------------+---------+---------------------------------+

  PollingTime = 120
"""
COMMAND = """dirac-wms-job-submit submits jobs described in JDL files.

Usage:
  dirac-wms-job-submit [options] JDL
  --File <file>   read the JDL from this file
  -r, --JobGroup  the job group
$ dirac-wms-job-submit job.jdl
"""


def test_kinds_are_chosen_from_what_the_chunk_contains():
    assert choose_kinds(OPTIONS, 2)[0] == "config"
    assert choose_kinds(COMMAND, 2)[0] == "command"
    assert choose_kinds(PILOT, 1) == ["howto"] or choose_kinds(PILOT, 1) == ["concept"]
    # concept is only a filler: asked at most once when other kinds score
    kinds = choose_kinds(OPTIONS + COMMAND, 3)
    assert kinds.count("concept") <= 1 and {"config", "command"} <= set(kinds)


def test_each_question_is_asked_about_a_name_the_chunk_holds():
    subjects = chunk_subjects(COMMAND + "\n[diracuser@dirac-tuto]$ ls", "dirac-wms-job-submit")
    assert subjects["command"] == ["dirac-wms-job-submit"]  # not the host dirac-tuto
    assert subjects["flag"] == ["--File", "--JobGroup"]
    # a package in a command line, a flag named in prose: not what the chunk describes
    other = chunk_subjects("mamba create -c conda-forge dirac-grid\nbuilt from --help output")
    assert other["command"] == [] and other["flag"] == []
    # a --flag but no command to be about: no command question ("What is a command?")
    assert "command" not in choose_kinds("mamba create --name my-env -c conda-forge x", 2)
    # a command page listing arguments, no flags: its second question is about an argument
    page = "Retrieve metadata for a PFN\n\n## Arguments\n\n  PFN:      Physical File Name\n"
    asks = plan_questions(page, 2, "dirac-dms-pfn-metadata")
    assert [a.kind for a in asks] == ["command", "command"]
    assert "PFN argument of dirac-dms-pfn-metadata" in asks[1].instruction
    # a command page: what the command does, then one of its flags (not a "What is …?")
    first, second = plan_questions(COMMAND, 2, "dirac-wms-job-submit")
    assert first.kind == second.kind == "command"
    assert "dirac-wms-job-submit" in first.instruction and "--File" in second.instruction
    # options from a table and Name = value lines; a default only where the chunk gives one
    assert chunk_subjects(OPTIONS)["config"][:3] == [
        "StalledTimeHours",
        "FailedTimeHours",
        "PollingTime",
    ]
    assert "default" in plan_questions(OPTIONS, 1)[0].instruction
    no_defaults = "Name | Description | Example\nMaxQueueSize | queries at once | 10\n"
    ask = plan_questions(no_defaults, 1)[0]
    assert ask.kind == "config" and "MaxQueueSize" in ask.instruction
    assert "default" not in ask.instruction
    # prose naming components: "What does <component> do?", each question its own name
    asks = plan_questions(PILOT, 2)
    concepts = [a.instruction for a in asks if a.kind == "concept"]
    assert concepts and all("SiteDirector" in c or "JobWrapper" in c for c in concepts)
    # a link names repositories and pages, not components; a configuration path does
    linked = "See https://github.com/DIRACGrid/WebAppDIRAC or /Systems/WMS/Agents/SiteDirector."
    assert chunk_subjects(linked)["concept"] == ["SiteDirector"]


def test_a_config_question_needs_an_option_the_chunk_names():
    prose = "The configuration is a tree of sections and options, the option values its leaves."
    assert "config" not in choose_kinds(prose, 2)


def test_a_question_echoing_the_instructions_is_caught():
    assert echoes(
        "What is a DIRAC component, service or agent the passage names?", instruction_words()
    )
    assert echoes(
        "Which configuration option or parameter sets a behaviour the passage describes?",
        instruction_words(),
    )
    assert not echoes(
        "What does the --File option of dirac-wms-job-submit do?", instruction_words()
    )


@pytest.mark.parametrize(
    ("question", "asked", "kind"),
    [
        ("Which option sets the hours before a job is stalled?", "config", "config"),
        ("What is the StalledJobAgent?", "config", "concept"),  # form decides
        ("How do I submit a job described in a JDL file?", "howto", "howto"),
        ("What does the --File flag of dirac-wms-job-submit do?", "command", "command"),
        ("Why does a job become stalled?", "troubleshooting", "troubleshooting"),
        ("Why does a job become stalled?", None, "troubleshooting"),
        ("Name the agent that fills the caches?", "concept", "other"),
    ],
)
def test_kind_label_is_the_asked_kind_checked_by_the_form(question, asked, kind):
    assert question_kind(question, asked) == kind


def test_vague_questions_are_caught():
    assert vague_question("What does this agent do?")
    assert vague_question("How is it configured?")
    assert vague_question("What does the passage say about pilots?")
    assert vague_question("What does a component do?")
    assert not vague_question("What does the StalledJobAgent do with stalled jobs?")


def pair(**kw) -> QAPair:
    base = dict(
        id="p1",
        question="How often does the ElementInspectorAgent run?",
        answer="Every 30 minutes.",
        source="a.rst",
        section="A",
        chunk_id="c1",
        grounding=1.0,
        model="m",
        created="2026-01-01T00:00:00+00:00",
    )
    base.update(kw)
    return QAPair(**base)


def test_old_pair_lines_still_load():
    old = (
        '{"id": "x", "question": "q?", "answer": "a", "source": "s", "section": "", '
        '"chunk_id": "c", "grounding": 0.8, "model": "m", "created": "t"}'
    )
    loaded = QAPair.model_validate_json(old)
    assert loaded.kept is True and loaded.kind is None and loaded.roundtrip_rank is None


def test_eval_near_duplicates_are_dropped():
    vocab = ["proxy", "renew", "pilot", "job", "stalled", "site"]

    def embed(texts):
        return [[t.lower().count(w) + 0.01 for w in vocab] for t in texts]

    pairs = [
        pair(id="a", question="How do I renew my proxy?"),
        pair(id="b", question="Why is my job stalled at the site?"),
    ]
    kept, dropped = holdout_filter(pairs, ["How can I renew a proxy?"], embed, 0.9)
    assert [p.id for p in kept] == ["b"]
    assert dropped[0][0].id == "a" and dropped[0][2] >= 0.9
    kept, dropped = holdout_filter(pairs, ["How can I renew a proxy?"], embed, 1.01)
    assert len(kept) == 2 and not dropped


def test_raft_target_is_valid_under_the_serving_schema():
    schema = answer_schema(4)
    positive = json.loads(raft_target("Every 30 minutes.", 3))
    jsonschema.validate(positive, schema)
    assert positive == {"answer": "Every 30 minutes. [3]", "citations": [3]}
    negative = json.loads(raft_target("Every 30 minutes.", None))
    jsonschema.validate(negative, schema)
    assert negative["answer"] == RAFT_ABSTENTION and negative["answer"].startswith("I don't know: ")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(raft_target("x", 5)), schema)


def write_pairs(path, pairs):
    path.write_text("".join(p.model_dump_json() + "\n" for p in pairs))


def test_import_review_reads_jsonl_and_csv_and_filters_training(tmp_path):
    pairs_path = tmp_path / "pairs.jsonl"
    write_pairs(pairs_path, [pair(id="a"), pair(id="b"), pair(id="c"), pair(id="d", kept=False)])
    jsonl = tmp_path / "labels.jsonl"
    jsonl.write_text(
        '{"id": "a", "label": "faithful"}\n{"id": "b", "label": "not_faithful"}\n'
        '{"id": "zz", "label": "no"}\n'
    )
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("id,label,note\na,yes,\nb,No,invented value\nc,,\n")
    assert read_review_labels(jsonl) == {"a": "faithful", "b": NOT_FAITHFUL, "zz": NOT_FAITHFUL}
    assert read_review_labels(csv_path) == {"a": "faithful", "b": NOT_FAITHFUL}

    out = tmp_path / "reviewed.jsonl"
    counts = import_review(pairs_path, jsonl, out)
    assert counts["faithful"] == 1 and counts["not_faithful"] == 1 and counts["unknown_ids"] == 1
    reviewed = {
        p.id: p for p in (QAPair.model_validate_json(x) for x in out.read_text().split("\n") if x)
    }
    assert reviewed["b"].review == NOT_FAITHFUL and not reviewed["b"].kept
    train, why = training_pairs(list(reviewed.values()))
    assert sorted(p.id for p in train) == ["a", "c"]
    assert why["labelled not faithful in review"] == 1 and why["rejected by a gate"] == 1

    counts = import_review(pairs_path, csv_path, out, drop_unreviewed=True)
    train, _ = training_pairs(
        [QAPair.model_validate_json(x) for x in out.read_text().split("\n") if x]
    )
    assert [p.id for p in train] == ["a"]

    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\na,maybe\n")
    with pytest.raises(InvalidInputError):
        read_review_labels(bad)


def test_unit_vectors_tolerate_zero_rows():
    from dirac_docs_mcp.tools.qa_export import _unit

    assert np.allclose(_unit([[0.0, 0.0], [3.0, 4.0]]), [[0, 0], [0.6, 0.8]])


def test_an_example_value_called_the_default_is_a_missing_claim():
    table = "Name | Example\nMaxFilesToProcess | 5000\nNoUnusedDelay | 6"
    called_default = faithfulness(
        "What is the default value of MaxFilesToProcess?", "MaxFilesToProcess is 5000.", table
    )
    assert called_default.missing == ["default"]
    plain = faithfulness(
        "Which value does the example give MaxFilesToProcess?", "MaxFilesToProcess is 5000.", table
    )
    assert plain.missing == []


def test_default_must_be_said_next_to_the_supporting_line():
    cfg = (
        "# The name of the installation Setup.\nSetup = mySetup\n# other lines\n# more\n"
        "# Takes a boolean value. By default false.\n#EnableAutoMerge = false"
    )
    far = faithfulness("What is the default value of the Setup option?", "Setup = mySetup", cfg)
    assert far.missing == ["default"]
    near = faithfulness(
        "What is the default value of EnableAutoMerge?", "EnableAutoMerge is false by default.", cfg
    )
    assert near.missing == []


def test_a_default_is_said_of_the_value_the_answer_gives():
    cfg = (
        "- By default, the WorkflowTaskAgent treats all the DataProcessing transformations\n"
        "- An example of working configuration:\n\nTransformations\n{\n"
        "  DataProcessing = MCSimulation\n}\n"
        "# Specify the log level of the job execution: INFO (default), DEBUG, VERBOSE\n"
        "j.setLogLevel('DEBUG')"
    )
    # the example's value called the default, "default" being elsewhere in the chunk
    example = faithfulness(
        "What is the default DataProcessing transformation?",
        "The default DataProcessing transformation is MCSimulation.",
        cfg,
    )
    assert example.missing == ["default"]
    # "INFO (default), DEBUG": the bracket belongs to INFO
    wrong = faithfulness("What is the default log level?", "The default log level is DEBUG.", cfg)
    assert wrong.missing == ["default"]
    right = faithfulness("What is the default log level?", "The default log level is INFO.", cfg)
    assert right.missing == []
    # a name holding the word is not a status claim
    group = faithfulness(
        "What does DefaultGroup set?", "DefaultGroup = dirac_user", "DefaultGroup = dirac_user"
    )
    assert group.missing == []


def test_a_sentence_copied_from_elsewhere_in_the_chunk_is_not_anchored():
    ces = (
        "The SSHComputingElement submits pilots through an SSH tunnel to computing clusters.\n"
        "## Dealing with the Cloud resources\n"
        "The CloudComputingElement allows submission to cloud sites using libcloud.\n"
        "The instances are contextualised using cloud-init."
    )
    q = "How do I submit a pilot to a computing cluster using SSH?"
    on_topic = faithfulness(q, "Use the SSHComputingElement, through an SSH tunnel.", ces)
    copied = faithfulness(
        q, "Use the SSHComputingElement. The instances are contextualised using cloud-init.", ces
    )
    # both sentences are in the chunk word for word, but the second is about the cloud CEs
    assert copied.window_share == 1.0
    assert copied.anchored_share < 0.7 <= on_topic.anchored_share
