"""Corrections with a guaranteed precision, against people: does the rule chosen from a reviewed random
sample keep its promise on the rows outside the sample?

Data:
- the MNIST and CIFAR-10 test sets of "Pervasive Label Errors" (``../shared/benchmarks/label-errors``):
  out-of-sample pred_probs and the crowd's verdicts. Only rows the crowd reviewed have a truth, so the
  population is the reviewed rows: the candidates the paper's confident learning flagged (MNIST 100,
  CIFAR-10 275). The crowd is the reviewer: a correction is right when the crowd found the row
  ``correctable`` to exactly that class. Today's default is scored, as in ``bench/issue_kinds.py``, on
  the reviewed rows that labelq's confident learning flags;
- injected flips, where many corrections are possible: the same MNIST and CIFAR-10 pred_probs with 10%
  of the labels flipped to another class at random (the truth: the original label); the population is
  every row confident learning flags. The pred_probs were not trained on these flips, so the model is
  better than one trained on noisy labels would be;
- with ``--fashion``: Fashion-MNIST (Debian ``dataset-fashion-mnist``), the first 20,000 training images
  with 10% of labels flipped, out-of-sample pred_probs from labelq's ``logreg`` model (5 folds, about
  7 minutes on 2 cores): a weak model (accuracy 0.77), where few corrections can be certified.

For each sample size, 200 draws: a uniformly random sample of the population is "reviewed", the rule is
chosen (``labelq.precision.choose_rule``, target P, confidence C) and applied to the population
outside the sample. Reported: the mean number of corrections and their mean precision outside the sample
(over draws that correct anything), and the share of draws whose precision outside the sample meets P
(a draw that corrects nothing meets it). It should be at least C. Beside them: today's default
(``relabel`` without ``--target-precision``: ``fix_confidence`` 0.9, no guarantee).

    python bench/verified_fix.py [--data ../shared/benchmarks/label-errors] [--draws 200] [--fashion]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import print_table  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "label-errors"


def label_errors(data: Path) -> list[dict]:
    """(name, labels, pred_probs, population positions, each row's right correction or -1)."""
    from labelq.detect import find_label_issues

    out = []
    for d in sorted(p for p in data.iterdir() if (p / "truth.json").exists()):
        truth = json.loads((d / "truth.json").read_text())
        labels = np.load(d / "labels.npy").astype(np.int64)
        probs = np.load(d / "pred_probs.npy")
        probs = probs / probs.sum(1, keepdims=True)
        flagged = find_label_issues(labels, probs).is_issue
        fix = np.full(len(labels), -2)  # -2: no truth (not reviewed)
        for it in truth["items"]:
            fix[it["id"]] = it["corrected_label"] if it["category"] == "correctable" else -1
        population = np.flatnonzero(fix != -2)
        out.append({"name": f"{truth['dataset']} (crowd)", "labels": labels, "probs": probs, "population": population, "fix": fix, "flagged": flagged})
    return out


def injected(case: dict, seed: int = 0) -> dict:
    """The case's pred_probs with 10% of its labels flipped at random; the truth is the original label."""
    from labelq.detect import find_label_issues

    truth, probs = case["labels"], case["probs"]
    rng = np.random.default_rng(seed)
    flip = rng.random(len(truth)) < 0.1
    labels = np.where(flip, (truth + rng.integers(1, probs.shape[1], len(truth))) % probs.shape[1], truth)
    flagged = find_label_issues(labels, probs).is_issue
    fix = np.where(flip, truth, -1)
    name = case["name"].replace(" (crowd)", "") + " pred_probs, 10% injected flips"
    return {"name": name, "labels": labels, "probs": probs, "population": np.flatnonzero(flagged), "fix": fix, "flagged": flagged}


def fashion(n: int = 20_000, seed: int = 0) -> dict:
    import labelq
    from labelq.detect import find_label_issues
    from labelq.predict import pred_probs_array

    ex = labelq.load_examples("fashion-mnist").slice(0, n)
    truth = ex["label"].to_numpy()
    rng = np.random.default_rng(seed)
    flip = rng.random(n) < 0.1
    labels = np.where(flip, (truth + rng.integers(1, 10, n)) % 10, truth)
    import pyarrow as pa

    from labelq import schema as S

    noisy = S.replace_columns(ex, {S.LABEL: pa.array(labels, pa.int64())})
    t0 = time.perf_counter()
    probs = pred_probs_array(labelq.cross_val_pred_probs(noisy, model="logreg", n_folds=5, seed=seed)).astype(np.float64)
    print(f"fashion-mnist: pred_probs in {time.perf_counter() - t0:.0f}s, out-of-sample accuracy on true labels {(probs.argmax(1) == truth).mean():.3f}")
    flagged = find_label_issues(labels, probs).is_issue
    fix = np.where(truth != labels, truth, -1)  # the right correction of a flipped row; a right label has none
    return {"name": "fashion-mnist 20k, 10% flips", "labels": labels, "probs": probs, "population": np.flatnonzero(flagged), "fix": fix, "flagged": flagged}


def run(case: dict, sizes: tuple[int, ...], target: float, confidence: float, draws: int) -> list[dict]:
    from labelq.kinds import classify
    from labelq.precision import GRID, candidates, choose_rule

    labels, probs, pop, fix = case["labels"], case["probs"], case["population"], case["fix"]
    cand, score = candidates(probs, labels)
    right = cand == fix  # the candidate is the right correction
    scored = case["flagged"] & (fix != -2)
    d = classify(probs, labels, case["flagged"]).correction[scored]
    best = max((right[pop][score[pop] >= t].mean(), t) for t in GRID if (score[pop] >= t).any())
    rows = [
        {
            "data": case["name"],
            "method": "today's default (fix_confidence 0.9)",
            "population": int(scored.sum()),
            "reviews": 0,
            "corrections": float((d >= 0).sum()),
            "precision": round(float((d[d >= 0] == fix[scored][d >= 0]).mean()), 3) if (d >= 0).any() else None,
            "draws meeting P": None,
            "best rule of the grid (oracle)": f"{best[0]:.3f} at score >= {best[1]}",
        }
    ]
    rng = np.random.default_rng(0)
    for n in sizes:
        if n >= len(pop):
            continue
        fixes, precisions, meets = [], [], 0
        for _ in range(draws):
            pick = rng.choice(len(pop), n, replace=False)
            rest = np.setdiff1d(np.arange(len(pop)), pick)
            rule = choose_rule(score[pop[pick]], right[pop[pick]], score[pop], target, confidence)
            if rule.threshold is None:
                fixes.append(0)
                meets += 1
                continue
            corrected = pop[rest][score[pop[rest]] >= rule.threshold]
            fixes.append(len(corrected))
            if len(corrected):
                p = float(right[corrected].mean())
                precisions.append(p)
                meets += p >= target
            else:
                meets += 1
        rows.append(
            {
                "data": case["name"],
                "method": f"target precision {target}, confidence {confidence}",
                "population": len(pop),
                "reviews": n,
                "corrections": round(float(np.mean(fixes)), 1),
                "precision": round(float(np.mean(precisions)), 3) if precisions else None,
                "draws meeting P": round(meets / draws, 3),
                "draws correcting": round(float(np.mean(np.array(fixes) > 0)), 3),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--fashion", action="store_true", help="Add the Fashion-MNIST case (it trains 5 models, about 7 minutes).")
    args = ap.parse_args()
    crowd = label_errors(args.data)
    cases = crowd + [injected(c) for c in crowd] + ([fashion()] if args.fashion else [])
    for target in (0.9, 0.95):
        rows = []
        for case in cases:
            rows += run(case, (50, 100, 200), target, 0.9, args.draws)
        print_table(rows, f"Corrections outside the reviewed sample, target precision {target}, confidence 0.9 ({args.draws} draws per size)")
        print()


if __name__ == "__main__":
    main()
