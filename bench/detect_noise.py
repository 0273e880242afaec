"""Detection quality on Fashion-MNIST with 10% asymmetric label flips, labelq vs cleanlab's CleanLearning.

Flips 10% of the training labels (fixed seed) to the class a person would confuse them with, then
measures how well each method's flagged set and ranking recover the flipped rows:
- labelq's default pipeline (the CNN, 5-fold cross-validation, confident learning with defaults);
- cleanlab's ``CleanLearning`` with its default settings (scikit-learn ``LogisticRegression``) on the
  same features (the pixels, scaled to [0, 1]).
Each method runs in its own process; wall time and peak memory are that process's.

    python bench/detect_noise.py [--rows 60000] [--noise 0.1] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import measured, offline_env, print_table  # noqa: E402

# the class a person would confuse each class with
CONFUSE = {0: 6, 1: 3, 2: 4, 3: 0, 4: 2, 5: 7, 6: 0, 7: 9, 8: 2, 9: 7}


def noisy_fashion(rows: int, noise: float, seed: int):
    from labelq.ingest.builtin import FASHION_DIR, read_idx

    images = read_idx(f"{FASHION_DIR}/train-images-idx3-ubyte.gz")[:rows]
    true = read_idx(f"{FASHION_DIR}/train-labels-idx1-ubyte.gz")[:rows].astype(np.int64)
    rng = np.random.default_rng(seed)
    flipped = np.zeros(len(true), dtype=bool)
    flipped[rng.choice(len(true), size=int(round(noise * len(true))), replace=False)] = True
    noisy = true.copy()
    noisy[flipped] = [CONFUSE[int(c)] for c in true[flipped]]
    return images, true, noisy, flipped


def scores(flagged: np.ndarray, quality: np.ndarray, flipped: np.ndarray) -> dict:
    from sklearn.metrics import average_precision_score

    tp = int((flagged & flipped).sum())
    precision = tp / max(int(flagged.sum()), 1)
    recall = tp / max(int(flipped.sum()), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {
        "flagged": int(flagged.sum()),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "average_precision": float(average_precision_score(flipped, 1.0 - quality)),
    }


def run_labelq(rows: int, noise: float, seed: int) -> dict:
    offline_env()
    import pyarrow as pa

    from labelq.ingest import examples_from_raw
    from labelq.ingest.builtin import FASHION_CLASSES, RawSource
    from labelq.ingest.images import encode_png
    from labelq.pipeline import AuditConfig, assemble_step, decide_step, detect_step, fold_step, plan_step

    images, true, noisy, flipped = noisy_fashion(rows, noise, seed)
    raw = RawSource(
        pa.table({"id": [f"train-{i:05d}" for i in range(len(noisy))], "label": noisy, "image": encode_png(images)}),
        "label",
        list(FASHION_CLASSES),
        "id",
        image_column="image",
    )
    examples = examples_from_raw(raw)
    with tempfile.TemporaryDirectory() as store:
        cfg = AuditConfig.from_options(source="fashion-mnist", store=store, seed=seed)
        plan = plan_step(cfg, examples)
        pred_probs = assemble_step(examples, plan, [fold_step(cfg, plan, f) for f in range(plan.n_folds)])
        decision, _, _ = decide_step(cfg, pred_probs, detect_step(cfg, examples, pred_probs))
    from labelq.predict import pred_probs_array

    probs = pred_probs_array(pred_probs)
    out = {"method": "labelq default (CNN, 5-fold CV, confident learning)"}
    out.update(scores(decision.is_label_issue, decision.label_score, flipped))
    out["oos_acc_vs_true"] = float((probs.argmax(1) == true).mean())
    return out


def run_cleanlearning(rows: int, noise: float, seed: int) -> dict:
    import warnings

    from cleanlab.classification import CleanLearning

    images, true, noisy, flipped = noisy_fashion(rows, noise, seed)
    X = images.reshape(len(images), -1).astype(np.float32) / 255.0
    warnings.filterwarnings("ignore")  # LogisticRegression's default max_iter warns about convergence
    # n_jobs=1: cleanlab's process pool relies on fork-inherited globals and fails in a spawned process
    # (NameError: pred_probs_by_class); parallelism only, the flagged set is the same
    cl = CleanLearning(seed=seed, find_label_issues_kwargs={"n_jobs": 1})
    issues = cl.find_label_issues(X, noisy)
    out = {"method": "cleanlab CleanLearning (defaults: LogisticRegression)"}
    out.update(scores(issues["is_label_issue"].to_numpy(), issues["label_quality"].to_numpy(), flipped))
    out["oos_acc_vs_true"] = float((issues["predicted_label"].to_numpy() == true).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=60000)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    results = []
    for fn in (run_labelq, run_cleanlearning):
        results.append(measured(fn, a.rows, a.noise, a.seed))
        print(results[-1], flush=True)
    print_table(results, f"Fashion-MNIST train, {a.rows:,} rows, {a.noise:.0%} asymmetric flips, seed {a.seed}")


if __name__ == "__main__":
    main()
