"""The benchmark report's numbers on the human-verified MNIST and CIFAR-10 test sets of "Pervasive Label
Errors" (``../shared/benchmarks/label-errors``): the provided model's accuracy on the original and on the
corrected labels (crowd corrections of the correctable errors; rows people called errors but could
not correct are scored two ways: kept with their given label, or removed), and the label-error rate
estimated from confident learning's flags and the people's checks, against the verified counts.

The reviewed rows are not a random sample (they are the lowest-margin candidates), so they form a
stratum of their own that was checked in full; the other rows had no random checks, so their flags
are taken as is (the estimate says it is not design-based there) and the table gives how many random
checks of those rows would give a +/-0.5 point interval.

    python bench/benchmark_label_errors.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import print_table  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "label-errors"


def main() -> None:
    from labelq.benchmark import CorrectedLabels, accuracy_table, estimate_error_rate, rows_needed
    from labelq.detect import find_label_issues

    acc_rows, rate_rows = [], []
    for d in sorted(p for p in DATA.iterdir() if (p / "truth.json").exists()):
        truth = json.loads((d / "truth.json").read_text())
        given = np.load(d / "labels.npy").astype(np.int64)
        probs = np.load(d / "pred_probs.npy")
        probs = probs / probs.sum(1, keepdims=True)
        corrected = given.copy()
        uncorrectable = np.zeros(len(given), bool)
        for it in truth["items"]:
            if it["corrected_label"] is not None:
                corrected[it["id"]] = it["corrected_label"]
            elif it["label_error"]:
                uncorrectable[it["id"]] = True
        pred = {"provided model (argmax of pred_probs)": probs.argmax(1)}
        for how, keep in (("uncorrectable errors kept", np.ones(len(given), bool)), ("uncorrectable errors removed", ~uncorrectable)):
            r = accuracy_table({k: v[keep] for k, v in pred.items()}, CorrectedLabels(given[keep], corrected[keep]), n_boot=2000)[0]
            acc_rows.append(
                {
                    "dataset": truth["dataset"],
                    "test set": how,
                    "rows": int(keep.sum()),
                    "accuracy, original labels": f"{r['original']:.4f} [{r['original_lo']:.4f}, {r['original_hi']:.4f}]",
                    "accuracy, corrected labels": f"{r['corrected']:.4f} [{r['corrected_lo']:.4f}, {r['corrected_hi']:.4f}]",
                    "on corrected rows": f"{r['mislabeled_subset']:.3f}" if not np.isnan(r["mislabeled_subset"]) else "",
                }
            )
        flags = find_label_issues(given, probs).is_issue
        reviewed = np.zeros(len(given), bool)
        reviewed[[it["id"] for it in truth["items"]]] = True
        verified = {it["id"]: bool(it["label_error"]) for it in truth["items"]}
        est = estimate_error_rate(flags.astype(float), verified, np.where(reviewed, "reviewed", "not reviewed"))
        rest = ~reviewed
        p_rest = float(flags[rest].mean())
        guess_sd = max(np.sqrt(p_rest * (1 - p_rest)), 0.05)  # no random checks there: a guess, stated as one
        rate_rows.append(
            {
                "dataset": truth["dataset"],
                "verified errors (paper)": truth["n_label_errors"],
                "checked rows only (lower bound)": f"{100 * est.lower_bound_checked_only:.2f}%",
                "confident learning flags": f"{int(flags.sum())} ({100 * est.surrogate_only:.2f}%)",
                "estimate": f"{100 * est.estimate:.2f}%",
                "design-based": est.design_based,
                "random checks of unreviewed rows for +/-0.5 pt (guessed sd)": rows_needed(0.01, guess_sd, int(rest.sum()), len(given)),
            }
        )
    print_table(acc_rows, "Provided model on original vs corrected test labels (95% bootstrap intervals, 2,000 resamples)")
    print()
    print_table(rate_rows, "Label-error rate: verified counts, lower bound and estimate")


if __name__ == "__main__":
    main()
