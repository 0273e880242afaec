"""Kinds of issue and proposed corrections, scored against people: the MNIST and CIFAR-10 test sets of
"Pervasive Label Errors" (``../shared/benchmarks/label-errors``, out-of-sample pred_probs + MTurk review).

Every reviewed row that confident learning flags gets a kind from ``labelq.relabel.classify`` and,
when the kind is ``wrong_label``, a correction. The baseline ("argmax") corrects every flagged row to
the argmax of pred_probs and calls them all wrong labels. Scored on the reviewed rows:

- correction accuracy on the correctable errors: the share corrected to the crowd's label (a row left
  for review is not corrected), and the share corrected to another label;
- precision of the corrections: the share of all proposed corrections that are right (category
  ``correctable`` and the crowd's label), and how many rows with a correct given label were "fixed";
- issue-kind accuracy on the confirmed errors (correctable -> wrong_label, multi_label -> multi_label,
  neither -> out_of_distribution, non_agreement -> ambiguous);
- the same for several ``fix_confidence`` thresholds (the trade-off between fixing and asking), and
  with the noise-aware posterior (``labelq.kinds.noise_aware``) in place of pred_probs.

    python bench/issue_kinds.py [--data ../shared/benchmarks/label-errors]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import print_table  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "label-errors"
EXPECTED = {"correctable": "wrong_label", "multi_label": "multi_label", "neither": "out_of_distribution", "non_agreement": "ambiguous"}


def score(method: str, dataset: str, items: list[dict], flagged: np.ndarray, kind: np.ndarray, correction: np.ndarray) -> dict:
    ids = np.array([it["id"] for it in items])
    cat = np.array([it["category"] for it in items])
    fixed = np.array([-1 if it["corrected_label"] is None else it["corrected_label"] for it in items])
    f, k, c = flagged[ids], kind[ids], correction[ids]
    correctable = cat == "correctable"
    errors = cat != "non_error"
    proposed = f & (c >= 0)
    right = proposed & correctable & (c == fixed)
    return {
        "dataset": dataset,
        "method": method,
        "reviewed & flagged": int(f.sum()),
        "correctable (flagged)": f"{int((correctable & f).sum())}/{int(correctable.sum())}",
        "corrected right": round(float(right.sum() / max(correctable.sum(), 1)), 3),
        "corrected wrong": round(float((proposed & correctable & (c != fixed)).sum() / max(correctable.sum(), 1)), 3),
        "left for review": round(float((correctable & f & (c < 0)).sum() / max(correctable.sum(), 1)), 3),
        "corrections": int(proposed.sum()),
        "precision of corrections": round(float(right.sum() / max(proposed.sum(), 1)), 3),
        "right labels 'fixed'": int((proposed & (cat == "non_error")).sum()),
        "kind accuracy (errors)": round(float(np.mean([k[i] == EXPECTED[cat[i]] for i in np.flatnonzero(errors & f)])), 3),
    }


def confusion(dataset: str, items: list[dict], flagged: np.ndarray, kind: np.ndarray) -> list[dict]:
    rows = []
    for category in ("correctable", "multi_label", "neither", "non_agreement", "non_error"):
        sel = [it["id"] for it in items if it["category"] == category and flagged[it["id"]]]
        if not sel:
            continue
        names, n = np.unique(kind[sel], return_counts=True)
        rows.append({"dataset": dataset, "crowd category": category, "rows": len(sel), **{str(a): int(b) for a, b in zip(names, n)}})
    return rows


def main() -> None:
    from labelq.detect import find_label_issues
    from labelq.kinds import KindRule, classify, noise_aware

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = ap.parse_args()
    results, sweep, conf = [], [], []
    for d in sorted(p for p in args.data.iterdir() if (p / "truth.json").exists()):
        truth = json.loads((d / "truth.json").read_text())
        labels = np.load(d / "labels.npy").astype(np.int64)
        probs = np.load(d / "pred_probs.npy")
        probs = probs / probs.sum(1, keepdims=True)
        det = find_label_issues(labels, probs)
        flagged = det.is_issue
        items = truth["items"]
        argmax = probs.argmax(1)
        base_kind = np.where(flagged, "wrong_label", "ok").astype(object)
        results.append(score("argmax of pred_probs", truth["dataset"], items, flagged, base_kind, np.where(flagged & (argmax != labels), argmax, -1)))
        k = classify(probs, labels, flagged)
        results.append(score("labelq kinds (defaults)", truth["dataset"], items, flagged, k.kind, k.correction))
        conf += confusion(truth["dataset"], items, flagged, k.kind)
        post = noise_aware(probs, labels, det.extra["noise_matrix"])
        kp = classify(post, labels, flagged)
        results.append(score("labelq kinds, noise-aware posterior", truth["dataset"], items, flagged, kp.kind, kp.correction))
        for t in (0.5, 0.8, 0.9, 0.95, 0.99):
            kt = classify(probs, labels, flagged, KindRule(fix_confidence=t))
            r = score(f"fix_confidence {t}", truth["dataset"], items, flagged, kt.kind, kt.correction)
            sweep.append(
                {
                    key: r[key]
                    for key in (
                        "dataset",
                        "method",
                        "corrected right",
                        "left for review",
                        "corrections",
                        "precision of corrections",
                        "right labels 'fixed'",
                        "kind accuracy (errors)",
                    )
                }
            )
    print_table(results, "Corrections and issue kinds on crowd-reviewed rows flagged by confident learning")
    print()
    print_table(conf, "labelq's kind (columns) by crowd category (rows), flagged reviewed rows")
    print()
    print_table(sweep, "fix_confidence sweep")


if __name__ == "__main__":
    main()
