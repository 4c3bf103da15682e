"""Validation of a tuned retriever: the held-out pseudo-queries ranked among passages,
recall@k / MRR of a model, and how far two models' rankings agree. Numpy only; the
models are passed in."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..models.embedding import EmbeddingModelSpec
from ..store import StoredChunk
from .pseudo_queries import TrainingPair, document_text

#: the ranks validation reports
KS = (1, 5, 10)
#: distractor chunks beside the held-out chunks in the validation corpus (its cost is one
#: forward pass each, per model, on the CPU)
VALIDATION_DISTRACTORS = 200


@dataclass
class ValidationSet:
    """The held-out pseudo-queries and the corpus they are ranked in: each held-out
    pair's own positive plus passages of other chunks (documents in the same cut form)."""

    queries: list[str]
    query_chunks: list[str]
    kinds: list[str]
    docs: list[str]
    doc_chunks: list[str]


def validation_set(
    validation: Sequence[TrainingPair], chunks: Sequence[StoredChunk], seed: int
) -> ValidationSet:
    held = {p.chunk_id for p in validation}
    others = [c for c in chunks if c.id not in held]
    distractors = random.Random(seed).sample(others, min(VALIDATION_DISTRACTORS, len(others)))
    return ValidationSet(
        queries=[p.question for p in validation],
        query_chunks=[p.chunk_id for p in validation],
        kinds=[p.kind for p in validation],
        docs=[p.positive for p in validation] + [document_text(c) for c in distractors],
        doc_chunks=[p.chunk_id for p in validation] + [c.id for c in distractors],
    )


def rankings(query_vectors: np.ndarray, doc_vectors: np.ndarray, k: int = 10) -> np.ndarray:
    """Indexes of the ``k`` best documents per query by cosine (unit vectors in)."""
    scores = query_vectors @ doc_vectors.T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def score_rankings(top: np.ndarray, data: ValidationSet) -> dict[str, Any]:
    """recall@1/5/10 and MRR@10 over all queries and by kind (a query is answered by any
    passage of its chunk)."""
    ranks: list[int | None] = []
    for i, row in enumerate(top):
        rank = next(
            (r for r, j in enumerate(row, 1) if data.doc_chunks[j] == data.query_chunks[i]), None
        )
        ranks.append(rank)

    def summary(idx: list[int]) -> dict[str, float]:
        n = max(len(idx), 1)
        out = {f"recall@{k}": sum(1 for i in idx if (ranks[i] or 99) <= k) / n for k in KS}
        out["mrr@10"] = sum(1 / ranks[i] for i in idx if ranks[i]) / n
        return {key: round(value, 4) for key, value in out.items()}

    result: dict[str, Any] = {"n": len(ranks), **summary(list(range(len(ranks))))}
    result["by_kind"] = {
        kind: {"n": n, **summary([i for i, k in enumerate(data.kinds) if k == kind])}
        for kind, n in sorted(Counter(data.kinds).items())
    }
    return result


def top10_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Mean share of the top-10 documents two rankings have in common."""
    if len(a) == 0:
        return 1.0
    return round(
        float(np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b, strict=True)])), 4
    )


def encode(model, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    return model.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True,
        convert_to_numpy=True, show_progress_bar=False,
    ).astype(np.float32)  # fmt: skip


def encode_onnx(folder: Path, spec_id: str, max_tokens: int, dim: int, data: ValidationSet):
    """Queries and documents of ``data`` through the serving path of an ONNX folder."""
    from ..embeddings import OnnxDenseEncoder

    spec = EmbeddingModelSpec(spec_id, folder, "onnx", dim, max_tokens)
    encoder = OnnxDenseEncoder(spec, batch_size=32, threads=1)
    queries = np.asarray([encoder.embed_query(q) for q in data.queries], dtype=np.float32)
    docs = np.asarray(encoder.embed_documents(data.docs), dtype=np.float32)
    return queries, docs
