"""A tiny fixed RAFT set for the generator-tuning tests: hand-written Q-A pairs over
passages of the fixture corpus (tests/conftest.py), turned into records by the real
export code (:func:`raft_record`, checked by :func:`check_raft_record`)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from dirac_docs_mcp.config import Settings
from dirac_docs_mcp.runtime import Runtime
from dirac_docs_mcp.schemas import QAPair
from dirac_docs_mcp.store import StoredChunk
from dirac_docs_mcp.tools.qa_export import check_raft_record, raft_record

# (source, section, passage text) -- sentences of tests/conftest.py's FIXTURE_FILES
PASSAGES = [
    (
        "guide/wms/agents.rst",
        "Workload Management Agents › StalledJobAgent",
        "The StalledJobAgent hunts for stalled jobs in the Job database. Jobs in the Running "
        "state whose pilot has not sent a heartbeat for a while are declared Stalled, and "
        "later Failed.",
    ),
    (
        "guide/wms/agents.rst",
        "Workload Management Agents › StalledJobAgent › Options",
        "StalledTimeHours: hours before a job is declared stalled, default 2. "
        "FailedTimeHours: hours before a stalled job fails, default 6.",
    ),
    (
        "guide/wms/agents.rst",
        "Workload Management Agents › JobCleaningAgent",
        "The JobCleaningAgent removes old jobs from the databases after a retention period.",
    ),
    (
        "guide/wms/pilots.md",
        "Pilots › Filling mode",
        "A pilot may run several jobs one after the other while it has time left on the "
        "worker node. This is called filling mode and increases the efficiency of pilots.",
    ),
    (
        "guide/wms/pilots.md",
        "Pilots › Pilot logging",
        "Pilots send their logs to the central logging service so administrators can debug them.",
    ),
    (
        "guide/dms/catalog.rst",
        "File Catalog",
        "The DIRAC File Catalog (DFC) stores logical file names (LFNs), their replicas and "
        "user-defined metadata. Files are found by metadata queries from the shell with "
        "dirac-dms-find-lfns.",
    ),
    (
        "guide/operations.cfg",
        "Operations › Defaults › JobScheduling",
        "MaxJobsInFillMode = 5: how many payloads one pilot may execute in one slot before "
        "it stops.",
    ),
    (
        "commands/dirac-proxy-init.txt",
        "dirac-proxy-init",
        "Create a proxy from your user certificate with dirac-proxy-init. The option "
        "-g --group sets the DIRAC group to embed in the proxy; -v --valid sets the validity "
        "of the proxy in hours.",
    ),
]
# (passage index, question, answer)
PAIRS = [
    (0, "What does the StalledJobAgent do?", "It hunts for stalled jobs in the Job database."),
    (1, "Which option sets the hours before a job is declared stalled?", "StalledTimeHours."),
    (1, "How many hours before a stalled job fails?", "FailedTimeHours, 6 hours by default."),
    (2, "What does the JobCleaningAgent remove?", "Old jobs, after a retention period."),
    (3, "What is filling mode?", "A pilot runs several jobs one after the other."),
    (4, "Where do pilots send their logs?", "To the central logging service."),
    (5, "What does the DIRAC File Catalog store?", "LFNs, their replicas and metadata."),
    (5, "Which command finds files by metadata?", "dirac-dms-find-lfns."),
    (6, "How many payloads may one pilot execute in one slot?", "MaxJobsInFillMode, 5."),
    (7, "Which option of dirac-proxy-init sets the DIRAC group?", "-g --group."),
    (7, "How is the validity of a proxy set?", "With -v --valid, in hours."),
]


def chunks() -> list[StoredChunk]:
    return [
        StoredChunk(
            id=f"c{i}",
            text=text,
            source=source,
            section=section,
            breadcrumb=section.split(" › "),
            position=i,
            page=None,
            root="/fixture",
            score=1.0 - i / 100,
        )
        for i, (source, section, text) in enumerate(PASSAGES)
    ]


def records(settings: Settings, seed: int = 0, negatives_every: int = 3) -> list[dict]:
    """Two records per pair (one distractor each, so a record is ~200 tokens), every ``negatives_every``-th pair also as a
    negative (oracle left out, target: the tool's abstention)."""
    rng = random.Random(seed)
    stored = chunks()
    out = []
    with Runtime(settings) as runtime:
        for n, (index, question, answer) in enumerate(PAIRS):
            oracle = stored[index]
            pair = QAPair(
                id=f"p{n}",
                question=question,
                answer=answer,
                source=oracle.source,
                section=oracle.section,
                chunk_id=oracle.id,
                grounding=1.0,
                model="hand-written",
                created="2026-01-01T00:00:00+00:00",
            )
            others = [c for c in stored if c.id != oracle.id]
            for _ in range(2):  # two records per pair, other distractors, other order
                out.append(raft_record(pair, oracle, rng.sample(others, 1), runtime, rng))
            if n % negatives_every == 0:
                out.append(raft_record(pair, None, rng.sample(others, 2), runtime, rng))
    for record in out:
        check_raft_record(record)
    return out


def write_raft_dir(folder: Path, settings: Settings, validation: int = 6) -> Path:
    """``train.jsonl`` with every record and ``validation.jsonl`` with the first few of
    them: the fixed set the loss must fall on."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = records(settings)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "validation.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows[:validation])
    )
    return folder
