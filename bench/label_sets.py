"""Conformal label sets on the Fashion-MNIST test set: empirical coverage and mean set size.

Out-of-sample pred_probs for the 10,000 test images come from labelq's default image model (5-fold
cross-validation on the test split). Each of ``--splits`` random halvings calibrates on one half and
measures on the other; the table gives the mean coverage (share of rows whose given label is in the
set), the worst class's coverage, the mean set size, the share of single-class sets and the accuracy
of the given labels on those rows.

    python bench/label_sets.py [--splits 20]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import offline_env, print_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--splits", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    offline_env()
    from labelq.ingest import IngestOptions, load_examples
    from labelq.predict import cross_val_pred_probs, pred_probs_array
    from labelq.relabel import ConformalLabelSets
    from labelq.relabel.label_sets import coverage

    ex = load_examples("fashion-mnist", IngestOptions(split="test"))
    p = pred_probs_array(cross_val_pred_probs(ex, seed=a.seed))
    y = ex["label"].to_numpy()
    print(f"out-of-sample accuracy of the pred_probs: {(p.argmax(1) == y).mean():.4f}", flush=True)
    rng = np.random.default_rng(a.seed)
    rows = []
    for target in (0.90, 0.95):
        for score in ("lac", "aps"):
            for cc in (False, True):
                cov, worst, size, single, single_acc = [], [], [], [], []
                for _ in range(a.splits):
                    perm = rng.permutation(len(y))
                    cal, test = perm[: len(y) // 2], perm[len(y) // 2 :]
                    sets = ConformalLabelSets(1 - target, score, cc).fit(p[cal], y[cal]).predict(p[test])
                    cov.append(coverage(sets, y[test]))
                    worst.append(min(coverage(sets[y[test] == c], y[test][y[test] == c]) for c in range(10)))
                    size.append(sets.sum(1).mean())
                    one = sets.sum(1) == 1
                    single.append(one.mean())
                    single_acc.append((p[test][one].argmax(1) == y[test][one]).mean())
                rows.append(
                    {
                        "target": target,
                        "score": score,
                        "class_conditional": cc,
                        "coverage": float(np.mean(cov)),
                        "worst_class_coverage": float(np.mean(worst)),
                        "mean_set_size": float(np.mean(size)),
                        "singleton_share": float(np.mean(single)),
                        "given_label_matches_singleton": float(np.mean(single_acc)),
                    }
                )
    print_table(rows, f"Fashion-MNIST test set (10,000 rows), {a.splits} random calibration/test halvings; coverage of the given labels")


if __name__ == "__main__":
    main()
