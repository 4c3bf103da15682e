"""Exports of a pairs file for the next steps: chat (SFT), RAFT (retrieval-augmented
fine-tuning), review (Argilla), and reviewed labels read back (``qa import-review``).

Over 500 lines: three formats that share one manifest, one dev-question filter and one
document split; apart, each would carry a copy of them.

Every export writes ``manifest.json`` beside its files: the corpus version (a hash over the
index's file hashes), the models (generator, embedding), the gate settings the pairs were
generated with, and the counts, so a model tuned on the data can name the data.

Training exports (chat, RAFT) take only the pairs that passed every gate (``kept``) and
that no reviewer labelled unfaithful, and drop the questions whose embedding is within
``qa_max_holdout_similarity`` cosine of an evaluation question (``qa_holdout_questions``,
e.g. ``../shared/eval/dev.jsonl``), so the evaluation stays honest.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError, NotFoundError
from ..runtime import Runtime
from ..schemas import QAPair, SearchHit
from ..store import StoredChunk
from .answer import answer_schema, build_messages
from .qa_files import _write_jsonl_atomic, chat_record, read_pairs, split_by_source
from .qa_gates import faithfulness
from .search import doc_link, require_index, retrieve, to_hits

FAITHFUL = "faithful"
NOT_FAITHFUL = "not_faithful"
# the abstention answer_question returns ("I don't know: <reason>"), as the RAFT target
# for records whose oracle passage is absent
RAFT_ABSTAIN_REASON = "the passages do not answer this question"
RAFT_ABSTENTION = "I don't know: " + RAFT_ABSTAIN_REASON


@dataclass
class ExportResult:
    kind: str
    out_dir: Path
    files: dict[str, int]  # file name -> records
    manifest: dict[str, Any]
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------
# which pairs train
# --------------------------------------------------------------------------------------


def training_pairs(pairs: Sequence[QAPair]) -> tuple[list[QAPair], Counter]:
    """Pairs that passed every gate and that no reviewer labelled unfaithful."""
    why: Counter[str] = Counter()
    out = []
    for pair in pairs:
        if pair.review == NOT_FAITHFUL:
            why["labelled not faithful in review"] += 1
        elif not pair.kept:
            why["rejected by a gate"] += 1
        else:
            out.append(pair)
    return out, why


def load_holdout_questions(path: Path) -> list[str]:
    """The ``question`` of each line of a JSONL (the evaluation set's format)."""
    if not path.is_file():
        raise NotFoundError(f"no evaluation questions at {path}")
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            questions.append(str(json.loads(line)["question"]))
        except (ValueError, KeyError, TypeError):
            raise InvalidInputError(f"{path}:{number} has no 'question'") from None
    return questions


def _unit(vectors: Sequence[Sequence[float]]) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    if array.size == 0:
        return array.reshape(0, 0)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.where(norms > 0, norms, 1)


def closest_holdout(
    pairs: Sequence[QAPair], holdout: Sequence[str], embed
) -> list[tuple[str, float]]:
    """For each pair, its closest evaluation question and their cosine similarity
    (``embed``: texts -> vectors, the index's dense encoder)."""
    if not pairs or not holdout:
        return [("", -1.0) for _ in pairs]
    sims = _unit(embed([p.question for p in pairs])) @ _unit(embed(list(holdout))).T
    best = np.argmax(sims, axis=1)
    return [(holdout[int(j)], round(float(sims[i, j]), 4)) for i, j in enumerate(best)]


def holdout_filter(
    pairs: Sequence[QAPair], holdout: Sequence[str], embed, threshold: float
) -> tuple[list[QAPair], list[tuple[QAPair, str, float]]]:
    """(pairs kept, (pair, closest evaluation question, cosine) for each dropped one):
    a generated question at or above ``threshold`` cosine of an evaluation question is
    dropped."""
    kept, dropped = [], []
    for pair, (question, cosine) in zip(pairs, closest_holdout(pairs, holdout, embed), strict=True):
        if cosine >= threshold:
            dropped.append((pair, question, cosine))
        else:
            kept.append(pair)
    return kept, dropped


# --------------------------------------------------------------------------------------
# manifest
# --------------------------------------------------------------------------------------


def corpus_version(runtime: Runtime | None) -> dict[str, Any]:
    """A hash over the index's (source, sha256) file records, and how many files."""
    if runtime is None:
        return {"files": None, "sha256": None, "note": "no index opened"}
    try:
        store = require_index(runtime)
        manifest = store.manifest()
    except Exception as exc:  # noqa: BLE001 - a missing index only blanks the field
        return {"files": None, "sha256": None, "note": f"no index: {exc}"}
    digest = hashlib.sha256()
    for source in sorted(manifest):
        digest.update(f"{source}\t{manifest[source].sha256}\n".encode())
    roots = store.roots() if hasattr(store, "roots") else []
    return {"files": len(manifest), "sha256": digest.hexdigest(), "roots": roots}


def build_manifest(
    kind: str,
    pairs_path: Path,
    pairs: Sequence[QAPair],
    runtime: Runtime | None,
    counts: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    settings_seen: list[dict] = []
    for pair in pairs:
        if pair.settings and pair.settings not in settings_seen:
            settings_seen.append(pair.settings)
    embedding = None
    if runtime is not None:
        embedding = runtime.settings.embedding_model
    return {
        "export": kind,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "pairs_file": {
            "path": str(pairs_path),
            "sha256": hashlib.sha256(pairs_path.read_bytes()).hexdigest(),
            "pairs": len(pairs),
        },
        "corpus": corpus_version(runtime),
        "models": {
            "generators": sorted({p.model for p in pairs}),
            "embedding": embedding,
        },
        "gate_settings": settings_seen,
        "kinds": dict(Counter(p.kind or "unlabelled" for p in pairs if p.kept)),
        "counts": counts,
        **(extra or {}),
    }


def _write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def _write_split(path: Path, records: list[dict[str, Any]]) -> None:
    """Write a split; an empty one is not written (``datasets`` cannot load an empty JSON
    file) and a stale one from an earlier export is removed."""
    if records:
        _write_jsonl_atomic(path, records)
    else:
        path.unlink(missing_ok=True)


def _holdout(
    runtime: Runtime | None, pairs: list[QAPair], holdout_path: Path | None, threshold: float
) -> tuple[list[QAPair], dict[str, Any]]:
    if holdout_path is None:
        return pairs, {"holdout": None, "note": "no evaluation questions given: not filtered"}
    if runtime is None:
        raise InvalidInputError("the evaluation-question filter needs the dense encoder")
    questions = load_holdout_questions(holdout_path)
    embed = runtime.encoders.dense.embed_documents
    closest = closest_holdout(pairs, questions, embed)
    kept = [p for p, (_, c) in zip(pairs, closest, strict=True) if c < threshold]
    dropped = [(p, q, c) for p, (q, c) in zip(pairs, closest, strict=True) if c >= threshold]
    nearest = sorted(zip(pairs, closest, strict=True), key=lambda x: -x[1][1])[:5]
    return kept, {
        "holdout": str(holdout_path),
        "holdout_questions": len(questions),
        "threshold_cosine": threshold,
        "dropped": len(dropped),
        "dropped_examples": [
            {"question": p.question, "closest_eval_question": q, "cosine": s}
            for p, q, s in dropped[:20]
        ],
        "closest_pairs": [
            {"question": p.question, "closest_eval_question": q, "cosine": c}
            for p, (q, c) in nearest
        ],
    }


# --------------------------------------------------------------------------------------
# chat
# --------------------------------------------------------------------------------------


def export_chat_split(
    pairs_path: Path,
    out_dir: Path,
    runtime: Runtime | None,
    holdout_path: Path | None = None,
    threshold: float = 0.85,
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> ExportResult:
    """``train.jsonl`` / ``validation.jsonl`` of chat records, whole documents on one side."""
    all_pairs = read_pairs(pairs_path)
    pairs, why = training_pairs(all_pairs)
    pairs, holdout = _holdout(runtime, pairs, holdout_path, threshold)
    if not pairs:
        raise InvalidInputError(f"{pairs_path} holds no pairs to export after the filters")
    train, validation = split_by_source(pairs, validation_fraction, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, part in (("train.jsonl", train), ("validation.jsonl", validation)):
        _write_split(out_dir / name, [chat_record(p) for p in part])
        if part:
            files[name] = len(part)
    counts = {
        "pairs_in_file": len(all_pairs),
        "excluded": dict(why),
        "near_eval_dropped": holdout.get("dropped", 0),
        "train": len(train),
        "validation": len(validation),
        "train_sources": len({p.source for p in train}),
        "validation_sources": len({p.source for p in validation}),
    }
    manifest = build_manifest(
        "chat", pairs_path, all_pairs, runtime, counts, {"eval_filter": holdout}
    )
    _write_manifest(out_dir, manifest)
    return ExportResult("chat", out_dir, files, manifest)


# --------------------------------------------------------------------------------------
# RAFT
# --------------------------------------------------------------------------------------


def _chunk_by_id(runtime: Runtime, source: str, chunk_id: str) -> StoredChunk | None:
    for chunk in require_index(runtime).chunks_of(source):
        if chunk.id == chunk_id:
            return chunk
    return None


def raft_target(answer: str, oracle_rank: int | None) -> str:
    """The assistant turn: the output answer_question's schema asks for (``answer`` then
    ``citations``), the answer citing its oracle passage, or the abstention."""
    if oracle_rank is None:
        return json.dumps({"answer": RAFT_ABSTENTION, "citations": []}, ensure_ascii=False)
    text = answer.rstrip()
    return json.dumps(
        {"answer": f"{text} [{oracle_rank}]", "citations": [oracle_rank]}, ensure_ascii=False
    )


def raft_record(
    pair: QAPair,
    oracle: StoredChunk | None,
    distractors: list[StoredChunk],
    runtime: Runtime,
    rng: random.Random,
) -> dict[str, Any]:
    """One RAFT record rendered through the serving prompt: ``messages`` = exactly what
    answer_question sends (:func:`answer.build_messages`, same passage budget) plus the
    target in its output schema; the passages and the oracle's position are kept as fields
    so the record can be re-rendered."""
    settings = runtime.settings
    chunks = list(distractors) + ([oracle] if oracle is not None else [])
    rng.shuffle(chunks)
    hits, _ = to_hits(chunks, settings.max_result_chars)
    rank = next((h.rank for h in hits if oracle is not None and h.chunk_id == oracle.id), None)
    messages = build_messages(
        pair.question,
        hits,
        settings.answer_max_chars_per_passage,
        settings.answer_model_may_abstain,
        example=settings.answer_example,  # the worked exchange the tool serves with, if on
    )
    quote = []
    if oracle is not None:
        quote = faithfulness(pair.question, pair.answer, oracle.text, oracle.section).evidence
    return {
        "id": pair.id + ("" if oracle is not None else "-neg"),
        "pair_id": pair.id,
        "messages": messages + [{"role": "assistant", "content": raft_target(pair.answer, rank)}],
        "oracle_rank": rank,
        "negative": oracle is None,
        "passages": [h.model_dump() for h in hits],
        "quote": quote,
        "source": pair.source,
        "kind": pair.kind,
    }


def export_raft(
    pairs_path: Path,
    out_dir: Path,
    runtime: Runtime,
    holdout_path: Path | None = None,
    threshold: float = 0.85,
    distractors: int | None = None,
    negative_share: float | None = None,
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> ExportResult:
    """RAFT records (Zhang et al. 2024): the question, its oracle chunk among ``distractors``
    chunks the index ranks highest for the question (hard negatives), the answer citing
    the oracle; ``negative_share`` of the records leave the oracle out and teach the
    abstention. Split by document like the chat export."""
    settings = runtime.settings
    distractors = settings.qa_raft_distractors if distractors is None else distractors
    negative_share = settings.qa_raft_negative_share if negative_share is None else negative_share
    all_pairs = read_pairs(pairs_path)
    pairs, why = training_pairs(all_pairs)
    pairs, holdout = _holdout(runtime, pairs, holdout_path, threshold)
    if not pairs:
        raise InvalidInputError(f"{pairs_path} holds no pairs to export after the filters")
    rng = random.Random(seed)
    train, validation = split_by_source(pairs, validation_fraction, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    missing_oracle = 0
    oracle_cut = 0
    negatives = 0
    written: dict[str, int] = {}
    for name, part in (("train.jsonl", train), ("validation.jsonl", validation)):
        records = []
        for pair in part:
            oracle = _chunk_by_id(runtime, pair.source, pair.chunk_id)
            if oracle is None:
                missing_oracle += 1
                continue
            ranked = retrieve(runtime, pair.question, distractors + 2, max_limit=50)
            others = [c for c in ranked if c.id != oracle.id][: distractors + 1]
            # the serving prompt cuts a passage at answer_max_chars_per_passage: an oracle
            # whose supporting text falls past the cut would teach citing what is not shown
            shown = oracle.text[: settings.answer_max_chars_per_passage]
            if faithfulness(pair.question, pair.answer, shown, oracle.section).missing:
                oracle_cut += 1
                continue
            negative = rng.random() < negative_share
            if negative:
                negatives += 1
                records.append(raft_record(pair, None, others[: distractors + 1], runtime, rng))
            else:
                records.append(raft_record(pair, oracle, others[:distractors], runtime, rng))
        _write_split(out_dir / name, records)
        if records:
            written[name] = len(records)
    counts = {
        "pairs_in_file": len(all_pairs),
        "excluded": dict(why),
        "near_eval_dropped": holdout.get("dropped", 0),
        "oracle_not_in_index": missing_oracle,
        "oracle_support_past_the_prompt_cut": oracle_cut,
        "records": sum(written.values()),
        "negatives": negatives,
        **written,
    }
    extra = {
        "eval_filter": holdout,
        "raft": {
            "distractors": distractors,
            "negative_share": negative_share,
            "distractor_source": "the index's top results for the question, oracle excluded",
            "prompt": "tools.answer.build_messages (the serving prompt)",
            "max_chars_per_passage": settings.answer_max_chars_per_passage,
            "model_may_abstain": settings.answer_model_may_abstain,
            "output_schema": "tools.answer.answer_schema(n_passages)",
            "abstention": RAFT_ABSTENTION,
        },
    }
    manifest = build_manifest("raft", pairs_path, all_pairs, runtime, counts, extra)
    _write_manifest(out_dir, manifest)
    return ExportResult("raft", out_dir, written, manifest)


def check_raft_record(record: dict[str, Any]) -> None:
    """Raise if a RAFT record is not what the serving prompt renders, or its target not
    valid under the serving output schema (used by the tests and by ``qa export``)."""
    import jsonschema

    hits = [SearchHit.model_validate(h) for h in record["passages"]]
    messages = record["messages"]
    target = json.loads(messages[-1]["content"])
    jsonschema.validate(target, answer_schema(len(hits)))
    if record["negative"]:
        assert target["answer"] == RAFT_ABSTENTION and target["citations"] == []
    else:
        assert target["citations"] == [record["oracle_rank"]]


# --------------------------------------------------------------------------------------
# review (Argilla)
# --------------------------------------------------------------------------------------

ARGILLA_SNIPPET = """import argilla as rg
from datasets import load_from_disk

ds = load_from_disk("{folder}")
client = rg.Argilla(api_url="http://localhost:6900", api_key="argilla.apikey")
settings = rg.Settings(
    guidelines=open("{folder}/GUIDELINES.md").read(),
    fields=[rg.TextField(name="question"), rg.TextField(name="answer"),
            rg.TextField(name="passage", use_markdown=True)],
    questions=[rg.LabelQuestion(name="label", labels=["faithful", "not_faithful"]),
               rg.TextQuestion(name="note", required=False)],
    metadata=[rg.TermsMetadataProperty(name="kind"), rg.TermsMetadataProperty(name="model"),
              rg.TermsMetadataProperty(name="source"),
              rg.FloatMetadataProperty(name="grounding"),
              rg.FloatMetadataProperty(name="window_share"),
              rg.FloatMetadataProperty(name="phrase_share"),
              rg.FloatMetadataProperty(name="anchored_share"),
              rg.IntegerMetadataProperty(name="specifics_missing_count"),
              rg.IntegerMetadataProperty(name="roundtrip_rank"),
              rg.TermsMetadataProperty(name="kept")],
)
dataset = rg.Dataset(name="dirac-qa-review", settings=settings, client=client)
dataset.create()
dataset.records.log(ds.to_list(), mapping={{"pair_id": "id"}})
# after review: one row per pair id with its label, for `qa import-review`
rows = [{{"id": r.id, "label": r.responses["label"][0].value}}
        for r in dataset.records(with_responses=True) if r.responses["label"]]
"""

REVIEW_GUIDELINES = """# Is this Q-A pair faithful to its passage?

Label **faithful** when everything the answer states is stated by the passage (paraphrase
is fine) and the question is about something the passage says. Label **not_faithful**
when the answer states anything the passage does not: an invented option, value, command
or component, a wrong relation between things the passage names, or a claim the passage
contradicts.
Borderline rule: an answer that is true to the passage but incomplete is faithful; an
answer that adds a specific (name, number, value, command) not in the passage, or that
presents a guess as fact, is not faithful, however plausible.
"""


def review_row(pair: QAPair, passage: str | None) -> dict[str, Any]:
    return {
        "id": pair.id,
        "question": pair.question,
        "answer": pair.answer,
        "passage": passage or "",
        "source": pair.source,
        "section": pair.section,
        "link": doc_link(pair.source),
        "chunk_id": pair.chunk_id,
        "kind": pair.kind or "",
        "model": pair.model,
        "grounding": float(pair.grounding),
        "window_share": float(pair.window_share if pair.window_share is not None else -1),
        "phrase_share": float(pair.phrase_share if pair.phrase_share is not None else -1),
        "anchored_share": float(pair.anchored_share if pair.anchored_share is not None else -1),
        "specifics_missing": ", ".join(pair.specifics_missing),
        "specifics_missing_count": len(pair.specifics_missing),
        "roundtrip_rank": int(pair.roundtrip_rank or 0),  # 0: not in the top k
        "kept": "yes" if pair.kept else "no",
        "label": pair.review or "",
    }


def export_review(pairs_path: Path, out_dir: Path, runtime: Runtime | None) -> ExportResult:
    """A Hugging Face ``datasets`` folder (``save_to_disk``) of every pair with its passage
    and gate scores, whose columns map onto an Argilla dataset (``argilla_load.py``)."""
    from datasets import Dataset

    pairs = read_pairs(pairs_path)
    if not pairs:
        raise InvalidInputError(f"{pairs_path} holds no pairs to export")
    texts: dict[str, str] = {}
    if runtime is not None:
        store = require_index(runtime)
        for source in sorted({p.source for p in pairs}):
            for chunk in store.chunks_of(source):
                texts[chunk.id] = chunk.text
    rows = [review_row(p, texts.get(p.chunk_id)) for p in pairs]
    out_dir.mkdir(parents=True, exist_ok=True)
    Dataset.from_list(rows).save_to_disk(str(out_dir))
    (out_dir / "GUIDELINES.md").write_text(REVIEW_GUIDELINES)
    (out_dir / "argilla_load.py").write_text(ARGILLA_SNIPPET.format(folder=out_dir))
    counts = {
        "rows": len(rows),
        "with_passage": sum(1 for r in rows if r["passage"]),
        "kept_by_gates": sum(1 for p in pairs if p.kept),
    }
    manifest = build_manifest("review", pairs_path, pairs, runtime, counts)
    _write_manifest(out_dir, manifest)
    return ExportResult("review", out_dir, {".": len(rows)}, manifest)


# --------------------------------------------------------------------------------------
# reviewed labels back
# --------------------------------------------------------------------------------------

_LABELS = {
    "faithful": FAITHFUL,
    "yes": FAITHFUL,
    "true": FAITHFUL,
    "1": FAITHFUL,
    "not_faithful": NOT_FAITHFUL,
    "not faithful": NOT_FAITHFUL,
    "unfaithful": NOT_FAITHFUL,
    "no": NOT_FAITHFUL,
    "false": NOT_FAITHFUL,
    "0": NOT_FAITHFUL,
}


def read_review_labels(path: Path) -> dict[str, str]:
    """Pair id -> faithful / not_faithful, from a JSONL (``{"id": ..., "label": ...}``) or
    a CSV with ``id`` and ``label`` columns. Labels: faithful/yes/true/1 or
    not_faithful/unfaithful/no/false/0 (case-insensitive); an empty label is skipped."""
    if not path.is_file():
        raise NotFoundError(f"no review file at {path}")
    rows: list[dict[str, Any]] = []
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    else:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    raise InvalidInputError(f"{path}:{number} is not JSON") from None
    labels: dict[str, str] = {}
    for number, row in enumerate(rows, 1):
        pair = str(row.get("id") or row.get("pair_id") or "").strip()
        raw = str(row.get("label") if row.get("label") is not None else "").strip().lower()
        if not pair:
            raise InvalidInputError(f"{path}: row {number} has no id")
        if not raw:
            continue
        if raw not in _LABELS:
            raise InvalidInputError(f"{path}: row {number} has an unknown label {raw!r}")
        labels[pair] = _LABELS[raw]
    return labels


def import_review(
    pairs_path: Path, review_path: Path, output: Path, drop_unreviewed: bool = False
) -> dict[str, int]:
    """Write ``output``: the pairs with their ``review`` label set; pairs labelled
    not_faithful are marked ``kept=false`` (so no training export takes them), and with
    ``drop_unreviewed`` so are the pairs nobody labelled. Returns the counts."""
    labels = read_review_labels(review_path)
    pairs = read_pairs(pairs_path)
    known = {p.id for p in pairs}
    counts = Counter(unknown_ids=sum(1 for i in labels if i not in known))
    out = []
    for pair in pairs:
        label = labels.get(pair.id)
        update: dict[str, Any] = {"review": label}
        if label == NOT_FAITHFUL:
            update["kept"] = False
            counts["not_faithful"] += 1
        elif label == FAITHFUL:
            counts["faithful"] += 1
        else:
            counts["unreviewed"] += 1
            if drop_unreviewed:
                update["kept"] = False
        new = pair.model_copy(update=update)
        counts["kept"] += int(new.kept)
        out.append(new)
    _write_jsonl_atomic(output, (json.loads(p.model_dump_json()) for p in out))
    return dict(counts)
