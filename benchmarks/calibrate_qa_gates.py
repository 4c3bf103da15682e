"""Calibrate the Q-A faithfulness gate on hand labels, and measure each gate per model.

Inputs: ``benchmarks/data/qa_labels.jsonl`` (each labelled pair with its question, answer,
chunk id and faithful true/false, read against the chunk by a person) and, for the
per-model table only, pairs files written by ``label_qa_pairs.py`` (every valid pair kept,
with its verdicts). Every score is recomputed from the chunk text in the index (so a new
gate is calibrated without regenerating, and the calibration needs only the committed
labels and the index).

Split: the labelled ids are shuffled with a fixed seed; the first ``--n-calibration``
(100) choose the thresholds, the rest report precision and recall. The thresholds chosen
maximise recall on the calibration part subject to precision >= ``--target-precision``
(0.9); neighbouring thresholds are printed with their held-out figures. With
``--judge-scores`` (from ``judge_qa_labels.py``) a judge model's threshold is chosen the
same way, alone and on top of the lexical gate.

    python benchmarks/calibrate_qa_gates.py --labels benchmarks/data/qa_labels.jsonl \
        --json benchmarks/results/qa14_calibration.json [--pairs PAIRS.jsonl ...]
(index from DIRAC_MCP_DATA_DIR / DIRAC_MCP_INDEX_PATH)
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

from dirac_docs_mcp.config import load_settings
from dirac_docs_mcp.runtime import Runtime
from dirac_docs_mcp.tools.qa_gates import faithfulness, grounding_score

MISSING = (0, 1, 2, 99)
WINDOW = (0.0, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
PHRASE = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
GROUNDING = (0.0, 0.5, 0.6, 0.7, 0.8)
ANCHORED = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)
GRIDS = (MISSING, WINDOW, PHRASE, GROUNDING, ANCHORED)
NO_GATE = (99, 0.0, 0.0, 0.0, 0.0)


def load_rows(paths: list[str]) -> list[dict]:
    rows = []
    for path in paths:
        rows += [json.loads(line) for line in Path(path).read_text().splitlines() if line]
    return rows


def chunk_texts(rows: list[dict]) -> dict[str, tuple[str, str, str]]:
    """chunk id -> (text, context for the faithfulness gate, section)"""
    out = {}
    with Runtime(load_settings()) as runtime:
        for source in sorted({r["source"] for r in rows}):
            for chunk in runtime.store.chunks_of(source):
                out[chunk.id] = (chunk.text, f"{chunk.section}\n{chunk.source}", chunk.section)
    return out


def score(rows: list[dict], texts: dict) -> None:
    for r in rows:
        text, context, section = texts[r["chunk_id"]]
        # the old gate's score, as generate_qa_pairs computes it
        r["grounding"] = round(grounding_score(r["answer"], f"{section}\n{text}"), 3)
        f = faithfulness(r["question"], r["answer"], text, context)
        r["_missing"], r["_window"], r["_phrase"] = len(f.missing), f.window_share, f.phrase_share
        r["_anchored"] = f.anchored_share
        r["_missing_list"] = f.missing


def run_of(r: dict) -> str:
    """The generation run a labelled pair comes from: its sample and prompts, and model."""
    model = r.get("model", "?").split("/")[-1].split("@")[0]
    return f"{r.get('run') or '?'} {model}"


def passes(r: dict, t: tuple) -> bool:
    m, w, p, g, a = t
    return (
        r["_missing"] <= m
        and r["_window"] >= w
        and r["_phrase"] >= p
        and r["grounding"] >= g
        and r["_anchored"] >= a
    )


def kept_figures(rows: list[dict], kept: list[dict], labels: dict) -> dict:
    """kept / precision / recall of a gate that kept ``kept`` out of ``rows``."""
    good = sum(1 for r in rows if labels[r["id"]])
    tp = sum(1 for r in kept if labels[r["id"]])
    return {
        "kept": len(kept),
        "precision": round(tp / len(kept), 3) if kept else None,
        "recall": round(tp / good, 3) if good else None,
    }


def pr(rows: list[dict], labels: dict, t: tuple) -> dict:
    figures = kept_figures(rows, [r for r in rows if passes(r, t)], labels)
    figures["faithful_labelled"] = sum(1 for r in rows if labels[r["id"]])
    figures["n"] = len(rows)
    return figures


def choose(rows: list[dict], labels: dict, target: float, min_recall: float) -> tuple:
    """The thresholds with the most recall at precision >= ``target``; when none reaches
    it, the most precision at recall >= ``min_recall`` (and say so)."""
    best, best_key, fallback, fallback_key = None, None, None, None
    for t in itertools.product(*GRIDS):
        f = pr(rows, labels, t)
        if f["precision"] is None:
            continue
        loose = (t[0], -t[1], -t[2], -t[3], -t[4])  # ties: the loosest thresholds
        if f["precision"] >= target:
            # most recall, then most precision, then the loosest thresholds
            key = (f["recall"], f["precision"], *loose)
            if best_key is None or key > best_key:
                best, best_key = t, key
        if f["recall"] >= min_recall:
            key = (f["precision"], f["recall"], *loose)
            if fallback_key is None or key > fallback_key:
                fallback, fallback_key = t, key
    return (best, True) if best is not None else (fallback, False)


JUDGE = (0.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9)


def judge_report(
    cal: list[dict], test: list[dict], labels: dict, scores: dict, lexical: tuple, args
) -> dict:
    """Does a judge's P(supported) add to the lexical gate? Its threshold is chosen on the
    calibration part (alone, and on top of the chosen lexical thresholds) by the same rule
    as the lexical ones; the held-out figures follow."""

    def figures(rows: list[dict], threshold: float, with_lexical: bool) -> dict:
        kept = [
            r
            for r in rows
            if scores[r["id"]] >= threshold and (not with_lexical or passes(r, lexical))
        ]
        return kept_figures(rows, kept, labels)

    def pick(with_lexical: bool) -> float:
        grid = [(t, figures(cal, t, with_lexical)) for t in JUDGE]
        grid = [(t, f) for t, f in grid if f["precision"] is not None]
        met = [
            (f["recall"], f["precision"], -t, t)
            for t, f in grid
            if f["precision"] >= args.target_precision
        ]
        if met:
            return max(met)[3]
        near = [
            (f["precision"], f["recall"], -t, t) for t, f in grid if f["recall"] >= args.min_recall
        ]
        return max(near)[3] if near else 0.0

    out: dict = {
        "calibration_alone": {str(t): figures(cal, t, False) for t in JUDGE},
    }
    for name, with_lexical in (("alone", False), ("on_top_of_lexical", True)):
        t = pick(with_lexical)
        out[name] = {
            "threshold": t,
            "calibration": figures(cal, t, with_lexical),
            "held_out": figures(test, t, with_lexical),
        }
    return out


def neighbours(t: tuple) -> list[tuple]:
    out = []
    for axis, grid in enumerate(GRIDS):
        i = grid.index(t[axis])
        for j in (i - 1, i + 1):
            if 0 <= j < len(grid):
                n = list(t)
                n[axis] = grid[j]
                out.append(tuple(n))
    return out


WHAT_IS = re.compile(r"^what (is|are)\b", re.IGNORECASE)


def model_table(rows: list[dict], labels: dict, t: tuple, k: int) -> dict:
    """Per model: every gate's count on the same pairs, kinds, and the faithful share."""
    out = {}
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model]
        faithful = [r for r in mine if passes(r, (t[0], t[1], t[2], 0.0, t[4]))]
        grounded = [r for r in mine if r["grounding"] >= 0.7]
        rt = [r for r in mine if r.get("roundtrip_rank") is not None and r["roundtrip_rank"] <= k]
        kept = [r for r in faithful if r in rt and r["grounding"] >= t[3]]
        labelled = [r for r in mine if r["id"] in labels]
        kept_l = [r for r in kept if r["id"] in labels]
        kinds = Counter(r.get("kind") or "other" for r in mine)
        kinds_kept = Counter(r.get("kind") or "other" for r in kept)
        out[model] = {
            "valid_pairs": len(mine),
            "chunks": len({r["chunk_id"] for r in mine}),
            "grounded_0.7_old_gate": len(grounded),
            "faithfulness_gate": len(faithful),
            "roundtrip_top_k": len(rt),
            "kept_by_all": len(kept),
            "labelled": len(labelled),
            "faithful_share_labelled_all": round(
                sum(labels[r["id"]] for r in labelled) / len(labelled), 3
            )
            if labelled
            else None,
            "faithful_share_labelled_kept": round(
                sum(labels[r["id"]] for r in kept_l) / len(kept_l), 3
            )
            if kept_l
            else None,
            "kinds_valid": dict(kinds),
            "kinds_kept": dict(kinds_kept),
            "what_is_share_valid": round(
                sum(bool(WHAT_IS.search(r["question"])) for r in mine) / len(mine), 3
            )
            if mine
            else None,
            "what_is_share_kept": round(
                sum(bool(WHAT_IS.search(r["question"])) for r in kept) / len(kept), 3
            )
            if kept
            else None,
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--pairs", nargs="*", default=[], help="pairs files, for the per-model table only"
    )
    parser.add_argument("--labels", default="benchmarks/data/qa_labels.jsonl")
    parser.add_argument("--n-calibration", type=int, default=100)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--target-precision", type=float, default=0.9)
    parser.add_argument(
        "--min-recall",
        type=float,
        default=0.6,
        help="when no thresholds reach the target precision: the most precise with this recall",
    )
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--judge-scores",
        nargs="*",
        default=[],
        help="files written by judge_qa_labels.py: report what each judge adds",
    )
    parser.add_argument(
        "--write-rescored",
        default=None,
        help="write every pair again with faithful/kept recomputed at the chosen thresholds",
    )
    args = parser.parse_args()

    rows = load_rows(args.pairs)
    label_rows = [json.loads(x) for x in Path(args.labels).read_text().splitlines() if x.strip()]
    labels = {x["id"]: bool(x["label"]) for x in label_rows if "id" in x}
    # pairs read while the gate's rules (not its thresholds) were designed
    design = {x["id"] for x in label_rows if x.get("seen_in_gate_design")}
    labelled = [dict(x) for x in label_rows if "id" in x]
    texts = chunk_texts(labelled + rows)
    score(labelled, texts)
    score(rows, texts)
    ids = sorted(r["id"] for r in labelled)
    random.Random(args.seed).shuffle(ids)
    n_cal = min(args.n_calibration, len(ids) * 2 // 3)
    cal_ids, test_ids = set(ids[:n_cal]), set(ids[n_cal:])
    cal = [r for r in labelled if r["id"] in cal_ids]
    test = [r for r in labelled if r["id"] in test_ids]
    chosen, target_met = choose(cal, labels, args.target_precision, args.min_recall)
    result: dict = {
        "labelled": len(labelled),
        "calibration": len(cal),
        "held_out": len(test),
        "faithful_share_labelled": round(sum(labels[r["id"]] for r in labelled) / len(labelled), 3),
        "axes": "(max_missing_specifics, min_window_share, min_phrase_share, min_grounding, "
        "min_anchored_share)",
        "chosen": chosen,
        "target_precision_met_on_calibration": target_met,
    }
    if chosen is not None:
        result["calibration_figures"] = pr(cal, labels, chosen)
        result["held_out_figures"] = pr(test, labels, chosen)
        result["neighbours_held_out"] = {
            str(n): {"calibration": pr(cal, labels, n), "held_out": pr(test, labels, n)}
            for n in neighbours(chosen)
        }
        unseen = [r for r in test if r["id"] not in design]
        result["held_out_not_seen_in_gate_design"] = pr(unseen, labels, chosen) if unseen else None
        # the held-out pairs of each generation run (model, prompts), for the product's
        # default output (the latest 0.5B run) apart from the rest
        result["held_out_by_run"] = {
            run: pr([r for r in test if run_of(r) == run], labels, chosen)
            for run in sorted({run_of(r) for r in test})
        }
        result["no_gate_held_out"] = pr(test, labels, NO_GATE)
        result["old_grounding_0.7_held_out"] = pr(test, labels, (99, 0.0, 0.0, 0.7, 0.0))
        result["specifics_only_held_out"] = pr(test, labels, (0, 0.0, 0.0, 0.0, 0.0))
        if rows:
            result["models"] = model_table(rows, labels, chosen, args.k)
        for path in args.judge_scores:
            scores = json.loads(Path(path).read_text())
            result.setdefault("judges", {})[Path(path).stem] = judge_report(
                cal, test, labels, scores, chosen, args
            )
    if args.write_rescored and chosen is not None:
        with open(args.write_rescored, "w", encoding="utf-8") as handle:
            for r in rows:
                faithful = passes(r, (chosen[0], chosen[1], chosen[2], 0.0, chosen[4]))
                roundtrip = r.get("roundtrip_rank") is not None
                r["faithful"] = faithful
                r["specifics_missing"] = r["_missing_list"]
                r["window_share"] = round(r["_window"], 3)
                r["phrase_share"] = round(r["_phrase"], 3)
                r["anchored_share"] = round(r["_anchored"], 3)
                r["kept"] = faithful and roundtrip and r["grounding"] >= chosen[3]
                r["settings"] = {
                    **r.get("settings", {}),
                    "max_missing_specifics": chosen[0],
                    "min_window_share": chosen[1],
                    "min_phrase_share": chosen[2],
                    "min_grounding": chosen[3],
                    "min_anchored_share": chosen[4],
                    "rescored_by": "benchmarks/calibrate_qa_gates.py",
                }
                clean = {k: v for k, v in r.items() if not k.startswith("_")}
                handle.write(json.dumps(clean, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
