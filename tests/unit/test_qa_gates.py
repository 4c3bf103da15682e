"""The Q-A quality gates on crafted good and bad pairs (no model)."""

from __future__ import annotations

import pytest

from dirac_docs_mcp.tools.qa_gates import (
    QuestionDeduper,
    about_prompt,
    content_words,
    grounding_score,
    schema_problem,
)
from dirac_docs_mcp.tools.qa_pairs import content_free_reason, qa_schema

CHUNK = (
    "StalledJobAgent\n"
    "The StalledJobAgent hunts for stalled jobs in the Job database. Jobs in the Running "
    "state whose pilot has not sent a heartbeat for StalledTimeHours (default 2) are "
    "declared Stalled, and later Failed after FailedTimeHours."
)


def test_a_good_pair_passes_every_gate():
    question = "When does the StalledJobAgent declare a job Stalled?"
    answer = "When its pilot has sent no heartbeat for StalledTimeHours, 2 hours by default."
    assert schema_problem(question, answer) is None
    assert not about_prompt(question, answer)
    assert grounding_score(answer, CHUNK) >= 0.7


@pytest.mark.parametrize(
    ("question", "answer", "reason"),
    [
        ("", "Something.", "empty question"),
        ("What is DIRAC?", "", "empty answer"),
        ("Explain the StalledJobAgent in detail.", "It hunts stalled jobs.", "does not end"),
        ("Why?", "Because.", "too short"),
        ("What " + "very " * 80 + "long?", "An answer.", "too long"),
        ("What does the StalledJobAgent do?", "x" * 900, "answer too long"),
        ("What does the StalledJobAgent do?", "I don't know.", "refusal"),
        ("What does the StalledJobAgent do?", "What does the StalledJobAgent do", "repeats"),
        ("What is the filling mode of pilots?", "The filling mode.", "adds nothing"),
        ("What does … do?", "It makes a new DiracX release.", "placeholder"),
        ("How do I ... with dirac-dms-add-file?", "Give it an LFN.", "placeholder"),
        (
            "How does dirac-admin-sysadmin-cli update a server?",
            "It updates the software, then restarts all services so they pick up the",
            "mid-sentence",
        ),
        (
            "How do I submit a Python script with DIRAC?",
            "Write a JDL for it. You can follow these steps and commands:",
            "mid-sentence",
        ),
    ],
)
def test_schema_gate_rejects_with_a_reason(question, answer, reason):
    problem = schema_problem(question, answer)
    assert problem is not None and reason in problem


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("What does the passage say about pilots?", "That they run jobs."),
        ("Which agent is described in this text?", "The StalledJobAgent."),
        ("How are stalled jobs handled by DIRAC?", "According to the given context, they fail."),
        ("What format should the question-answer pairs use?", "JSON."),
    ],
)
def test_pairs_about_the_prompt_are_caught(question, answer):
    assert about_prompt(question, answer)


def test_about_prompt_leaves_dirac_questions_alone():
    assert not about_prompt(
        "How do I pass a text file to a job's input sandbox?",
        "List it in the InputSandbox parameter of the JDL.",
    )


def test_grounding_separates_supported_from_invented_answers():
    supported = "Jobs are declared Stalled when the pilot sends no heartbeat, then Failed."
    invented = "DIRAC is a high-performance computing framework for scientific data analysis."
    assert grounding_score(supported, CHUNK) >= 0.85  # only "sends" (vs "sent") is missing
    assert grounding_score(invented, CHUNK) < 0.3
    assert grounding_score("", CHUNK) == 0.0


def test_content_words_split_names_and_stem():
    words = content_words("Use dirac-proxy-init with Resources.Sites jobs")
    assert "dirac-proxy-init" in words and "proxy" in words and "init" in words
    assert "job" in words and "with" not in words


def test_deduper_catches_exact_and_near_duplicates():
    dedup = QuestionDeduper(threshold=0.9)
    dedup.add("What does the StalledJobAgent do?", [1.0, 0.0, 0.0])
    assert dedup.is_duplicate("what does the  StalledJobAgent do", None)  # exact after folding
    assert dedup.is_duplicate("What is the job of the StalledJobAgent?", [0.99, 0.1, 0.0])
    assert not dedup.is_duplicate("How do pilots fill nodes?", [0.0, 1.0, 0.0])
    assert dedup.closest([0.0, 0.0, 2.0]) == pytest.approx(0.0)
    assert len(dedup) == 1


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("TODO", "too small"),
        ("\n".join(f"Installing the {n} service" for n in "ABCDEFGHIJKL") * 2, "titles"),
        (
            "\n".join(f"See https://dirac.example/{n} for docs and more" for n in range(10)),
            "links",
        ),
    ],
)
def test_content_free_chunks_are_skipped(text, reason):
    found = content_free_reason(text, min_words=20)
    assert found is not None and reason in found


def test_prose_chunks_are_kept():
    assert content_free_reason(CHUNK * 2, min_words=20) is None


def test_schema_asks_for_exactly_n_pairs_question_first():
    schema = qa_schema(3)
    assert schema["minItems"] == schema["maxItems"] == 3
    assert list(schema["items"]["properties"]) == ["question", "answer"]
