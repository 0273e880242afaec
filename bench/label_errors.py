"""Detection on human-verified label errors: the MNIST and CIFAR-10 test sets of "Pervasive Label Errors".

Uses ``../shared/benchmarks/label-errors`` (given out-of-sample pred_probs and crowd verification).
Only candidates that the paper's method flagged were reviewed, so rankings are compared over the
reviewed ids (average precision of the label-quality ranking for `label_error`), and the flagged
set's precision is measured over its reviewed members. labelq's detector is run beside cleanlab's
``find_label_issues`` with its defaults, in the same process, on the same inputs.

    python bench/label_errors.py [--data ../shared/benchmarks/label-errors]
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


def evaluate(name: str, flagged: np.ndarray, quality: np.ndarray, truth: dict, seconds: float) -> dict:
    from sklearn.metrics import average_precision_score

    items = truth["items"]
    ids = np.array([it["id"] for it in items])
    err = np.array([it["label_error"] for it in items])
    reviewed_flagged = flagged[ids]
    return {
        "dataset": truth["dataset"],
        "method": name,
        "flagged": int(flagged.sum()),
        "flagged_reviewed": int(reviewed_flagged.sum()),
        "confirmed_errors_flagged": int((reviewed_flagged & err).sum()),
        "precision_reviewed": float((reviewed_flagged & err).sum() / max(reviewed_flagged.sum(), 1)),
        "recall_of_confirmed": float((reviewed_flagged & err).sum() / max(err.sum(), 1)),
        "ap_reviewed": float(average_precision_score(err, 1.0 - quality[ids])),
        "seconds": round(seconds, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    a = ap.parse_args()
    from cleanlab.filter import find_label_issues as cl_find
    from cleanlab.rank import get_label_quality_scores

    from labelq.detect import ConfidentLearning
    from labelq.validation import check_pred_probs

    rows = []
    for ds in ("mnist", "cifar10"):
        d = a.data / ds
        if not d.exists():
            sys.exit(f"{d} is missing: pass --data pointing at shared/benchmarks/label-errors")
        pred_probs = np.load(d / "pred_probs.npy")
        labels = np.load(d / "labels.npy").astype(np.int64)
        truth = json.loads((d / "truth.json").read_text())

        t0 = time.perf_counter()
        flagged = cl_find(labels, pred_probs)
        quality = get_label_quality_scores(labels, pred_probs)
        rows.append(evaluate("cleanlab find_label_issues (defaults)", flagged, quality, truth, time.perf_counter() - t0))

        for filter_by, method in (("prune_by_noise_rate", "self_confidence"), ("both", "normalized_margin")):
            t0 = time.perf_counter()
            probs = check_pred_probs(pred_probs, len(labels), pred_probs.shape[1])
            det = ConfidentLearning(filter_by=filter_by, score_method=method).detect(labels, probs)
            label = "labelq default" if filter_by == "prune_by_noise_rate" else f"labelq filter_by={filter_by}, {method}"
            rows.append(evaluate(label, det.is_issue, det.score, truth, time.perf_counter() - t0))
    print_table(rows, "Human-verified label errors (MNIST, CIFAR-10 test sets); AP and precision over reviewed ids")


if __name__ == "__main__":
    main()
