"""Pretrained embeddings against today's default models, on real data with injected label flips.

For each dataset, 10% of the labels (fixed seed) are flipped to another class at random; each model
then gives 5-fold out-of-sample pred_probs on the flipped labels, and confident learning (labelq's
defaults) flags rows. Printed per dataset and model:

- ``OOS acc``: out-of-sample accuracy against the labels as published (before the flips);
- ``P``, ``R``, ``F1`` of the flagged set against the flipped rows; ``AP``: average precision of the ranking;
- seconds (the embedding time, the first run, is shown apart: a second audit of the same content reads the cache).

    python bench/embeddings.py [fine-foods spamassassin fashion-mnist-test] [--noise 0.1] [--seed 0]

Fashion-MNIST is its 10,000-row test split (``--split test``), to keep the CNN and the embedding
(190 images/s at 96 x 96 on 2 cores) within minutes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import offline_env, print_table  # noqa: E402

DATASETS = {"fine-foods": ("fine-foods", None), "spamassassin": ("spamassassin", None), "fashion-mnist-test": ("fashion-mnist", "test")}


def flip(labels: np.ndarray, k: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``noise`` of the rows moved to another class, uniformly: (noisy labels, flipped mask)."""
    rng = np.random.default_rng(seed)
    flipped = np.zeros(len(labels), dtype=bool)
    flipped[rng.choice(len(labels), size=int(round(noise * len(labels))), replace=False)] = True
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, k, size=int(flipped.sum()))) % k
    return noisy, flipped


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("datasets", nargs="*", default=list(DATASETS))
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=None, help="folder for the embedding cache (default: a temporary folder)")
    a = ap.parse_args()
    offline_env()
    import pyarrow as pa
    from sklearn.metrics import average_precision_score

    from labelq import schema as S
    from labelq.detect import find_label_issues
    from labelq.ingest import IngestOptions, load_examples
    from labelq.predict.crossval import cross_val_pred_probs, pred_probs_array
    from labelq.predict.embeddings import embed_inputs, encoder_for
    from labelq.predict.models import DEFAULT_MODEL, read_inputs

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(a.cache or tmp)
        for name in a.datasets:
            source, split = DATASETS[name]
            examples = load_examples(source, IngestOptions(split=split))
            info = S.info_of(examples)
            k = len(info.class_names)
            truth = examples[S.LABEL].to_numpy()
            noisy, flipped = flip(truth, k, a.noise, a.seed)
            examples = examples.set_column(examples.column_names.index(S.LABEL), S.LABEL, pa.array(noisy, examples.schema.field(S.LABEL).type))
            t0 = time.perf_counter()
            encoder = encoder_for(info.modality)
            embed_inputs(read_inputs(examples), encoder, cache)
            embed_s = time.perf_counter() - t0
            for model in (DEFAULT_MODEL[info.modality], "embed-logreg"):
                t0 = time.perf_counter()
                probs = pred_probs_array(cross_val_pred_probs(examples, model=model, n_folds=5, seed=a.seed, cache_dir=cache))
                seconds = time.perf_counter() - t0
                flagged = find_label_issues(noisy, probs, k).is_issue
                tp = int((flagged & flipped).sum())
                p, r = tp / max(int(flagged.sum()), 1), tp / max(int(flipped.sum()), 1)
                rows.append(
                    {
                        "dataset": name,
                        "rows": len(truth),
                        "model": model,
                        "OOS acc": float((probs.argmax(1) == truth).mean()),
                        "flagged": int(flagged.sum()),
                        "P": p,
                        "R": r,
                        "F1": 2 * p * r / max(p + r, 1e-12),
                        "AP": float(average_precision_score(flipped, 1.0 - probs[np.arange(len(noisy)), noisy])),
                        "s (folds)": seconds,
                        "s (embedding, first run)": embed_s if model == "embed-logreg" else None,
                    }
                )
                print_table(rows[-1:])
    print_table(rows, f"Pretrained embeddings vs default models, {a.noise:.0%} uniform flips, seed {a.seed}, 5 folds")


if __name__ == "__main__":
    main()
