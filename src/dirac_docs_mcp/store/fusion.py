"""Fusion of ranked lists into one ranking: weighted reciprocal-rank fusion (as Qdrant
computes it) and weighted min-max score fusion. Pure maths on ``(point id, score)`` lists,
shared by both back-ends."""

from __future__ import annotations

from collections.abc import Sequence


def weighted_rrf(
    ranked_lists: Sequence[Sequence[str]], k: int, weights: Sequence[float]
) -> list[tuple[str, float]]:
    """Weighted reciprocal-rank fusion, exactly as Qdrant defines it (and as qdrant-client's
    embedded mode computes it): the point at 0-based rank ``r`` of a list with weight ``w``
    scores ``1 / ((r + 1) / w + k - 1)`` (``1 / (k + r)`` at ``w = 1``; nothing at
    ``w <= 0``), summed over the lists, best first.

    Ties keep the order of first appearance (the first list, then the next), which makes
    the ranking deterministic; Qdrant's own fusion leaves ties in hash-map order.
    """
    scores: dict[str, float] = {}
    for ranked, weight in zip(ranked_lists, weights, strict=True):
        for rank, pid in enumerate(ranked):
            score = 0.0 if weight <= 0 else 1.0 / ((rank + 1.0) / weight + k - 1.0)
            scores[pid] = scores.get(pid, 0.0) + score
    return sorted(scores.items(), key=lambda item: item[1], reverse=True)


def minmax_fusion(
    scored_lists: Sequence[Sequence[tuple[str, float]]], weights: Sequence[float]
) -> list[tuple[str, float]]:
    """Convex combination of min-max normalised scores ("score fusion").

    Each list's scores are scaled to [0, 1] over that list (its best candidate 1, its last
    0; a list whose scores are all equal gives each 1), multiplied by the list's weight and
    summed; a point absent from a list gets nothing from it. Unlike rank fusion this keeps
    how far ahead a retriever's best candidates are, which a strong dense model makes worth
    keeping (measured in ``benchmarks/results/dense2_fusion_grid.json``). Ties keep the
    order of first appearance, as in :func:`weighted_rrf`.
    """
    scores: dict[str, float] = {}
    for scored, weight in zip(scored_lists, weights, strict=True):
        if not scored:
            continue
        values = [s for _, s in scored]
        lo, hi = min(values), max(values)
        for pid, value in scored:
            norm = 1.0 if hi == lo else (value - lo) / (hi - lo)
            scores[pid] = scores.get(pid, 0.0) + (max(weight, 0.0) * norm)
    return sorted(scores.items(), key=lambda item: item[1], reverse=True)


def fuse(
    scored_lists: Sequence[Sequence[tuple[str, float]]],
    fusion: str,
    rrf_k: int,
    weights: Sequence[float],
) -> list[tuple[str, float]]:
    """The fused ranking of ``(point id, score)`` lists, best first."""
    if fusion == "minmax":
        return minmax_fusion(scored_lists, weights)
    if fusion == "rrf":
        return weighted_rrf([[pid for pid, _ in lst] for lst in scored_lists], rrf_k, weights)
    raise ValueError(f"unknown fusion {fusion!r}")
