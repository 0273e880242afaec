"""Outliers planted in real data, found in each feature space: the inputs' own and pretrained embeddings.

- photos: Fashion-MNIST's 10,000 test images plus grey crops of scikit-learn's two sample photos;
- images: Fashion-MNIST's test images plus handwritten digits (scikit-learn's, 8 x 8 scaled to 28 x 28);
- text: the 5,000 fine-food reviews plus SpamAssassin spam emails;
- tabular: the 178 wines plus 6 copies of wines with three features moved 8 standard deviations.

For each space: the average precision of ``outlier_score`` at ranking the planted rows, and the
precision and recall of ``is_outlier`` under Tukey's fence (Q3 + f x IQR) for several f: Datalab's
default is f = 1.7 (its threshold 0.37); labelq's is Tukey's 1.5, chosen from this table.

    python bench/outliers.py [photos images text tabular] [--planted 10] [--seed 0] [--cache DIR]
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

FENCES = (1.0, 1.5, 1.7, 3.0)


def planted_photos(n: int, seed: int):
    """Fashion-MNIST's test images plus ``n`` grey 28 x 28 crops of scikit-learn's two sample photos (a palace, a flower)."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    photos = load_sample_images().images
    crops = []
    for j in range(n):
        p = photos[j % 2]
        side = int(rng.integers(60, 200))
        y, x = int(rng.integers(0, p.shape[0] - side)), int(rng.integers(0, p.shape[1] - side))
        crops.append(np.asarray(Image.fromarray(p[y : y + side, x : x + side]).convert("L").resize((28, 28), Image.BILINEAR)))
    return _fashion_plus(np.stack(crops), seed)


def planted_images(n: int, seed: int):
    """Fashion-MNIST's test images plus ``n`` handwritten digits (scikit-learn's, 8 x 8 scaled to 28 x 28)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = load_digits()
    pick = rng.choice(len(digits.images), n, replace=False)
    extra = np.stack([np.asarray(Image.fromarray((digits.images[i] * 255 / 16).astype(np.uint8)).resize((28, 28), Image.BILINEAR)) for i in pick])
    return _fashion_plus(extra, seed)


def _fashion_plus(extra: np.ndarray, seed: int):
    import pyarrow as pa

    from labelq.ingest import examples_from_raw
    from labelq.ingest.builtin import FASHION_CLASSES, FASHION_DIR, RawSource, read_idx
    from labelq.ingest.images import encode_png

    images = read_idx(f"{FASHION_DIR}/t10k-images-idx3-ubyte.gz")
    labels = read_idx(f"{FASHION_DIR}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    rng = np.random.default_rng(seed + 1)
    n = len(extra)
    all_images = np.concatenate([images, extra])
    all_labels = np.concatenate([labels, rng.integers(0, 10, n)])
    table = pa.table({"id": [f"r{i:05d}" for i in range(len(all_labels))], "label": all_labels, "image": encode_png(all_images)})
    examples = examples_from_raw(RawSource(table, "label", list(FASHION_CLASSES), "id", image_column="image"))
    return examples, np.arange(len(all_labels)) >= len(labels)


def planted_text(n: int, seed: int):
    import pyarrow as pa

    from labelq.ingest import examples_from_raw, load_raw
    from labelq.ingest.builtin import RawSource

    reviews = load_raw("fine-foods").table
    spam = load_raw("spamassassin").table
    rng = np.random.default_rng(seed)
    is_spam = np.asarray([g == "spam" for g in spam["label"].to_pylist()])
    pick = rng.choice(np.flatnonzero(is_spam), n, replace=False)
    texts = reviews["text"].to_pylist() + [spam["text"][int(i)].as_py() for i in pick]
    labels = reviews["label"].to_pylist() + [reviews["label"][int(i)].as_py() for i in rng.integers(0, reviews.num_rows, n)]
    table = pa.table({"id": [f"r{i:05d}" for i in range(len(texts))], "label": labels, "text": texts})
    examples = examples_from_raw(RawSource(table, "label", None, "id", text_column="text"))
    return examples, np.arange(len(texts)) >= reviews.num_rows


def planted_tabular(n: int, seed: int):
    import pyarrow as pa
    from sklearn.datasets import load_wine

    from labelq.ingest import examples_from_raw
    from labelq.ingest.builtin import RawSource

    wine = load_wine()
    X, y = wine.data.copy(), wine.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    base = rng.choice(len(X), n, replace=False)
    moved = X[base].copy()
    for row in moved:
        cols = rng.choice(X.shape[1], 3, replace=False)
        row[cols] = X[:, cols].mean(axis=0) + rng.choice([-8, 8], 3) * X[:, cols].std(axis=0)
    X, y = np.concatenate([X, moved]), np.concatenate([y, y[base]])
    table = pa.table({"id": [f"r{i:04d}" for i in range(len(y))], "label": y, **{f"f{j}": X[:, j] for j in range(X.shape[1])}})
    examples = examples_from_raw(RawSource(table, "label", list(wine.target_names), "id", feature_columns=[f"f{j}" for j in range(X.shape[1])]))
    return examples, np.arange(len(y)) >= len(wine.target)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kinds", nargs="*", default=["photos", "images", "text", "tabular"])
    ap.add_argument("--cache", default=None, help="folder for the embedding cache (default: a temporary folder)")
    ap.add_argument("--planted", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    offline_env()
    from sklearn.metrics import average_precision_score

    from labelq.detect.neighbors import NeighborOptions, check_neighbors
    from labelq.predict.embeddings import embed_inputs, encoder_for

    makers = {"photos": planted_photos, "images": planted_images, "text": planted_text, "tabular": planted_tabular}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = a.cache or tmp
        for kind in a.kinds:
            examples, planted = makers[kind](a.planted if kind != "tabular" else 6, a.seed)
            spaces = [None]
            if kind != "tabular":
                encoder = encoder_for("text" if kind == "text" else "image")
                spaces.append(lambda inputs, encoder=encoder: embed_inputs(inputs, encoder, Path(cache)))
            for embedder in spaces:
                t0 = time.perf_counter()
                checks = check_neighbors(examples, NeighborOptions(), a.seed, embedder)
                seconds = time.perf_counter() - t0
                score = checks.outlier_score
                q1, q3 = np.percentile(score, [25, 75])
                row = {
                    "data": kind,
                    "rows": len(score),
                    "planted": int(planted.sum()),
                    "space": checks.info.space,
                    "AP": float(average_precision_score(planted, score)),
                }
                for f in FENCES:
                    flagged = score > q3 + f * (q3 - q1)
                    tp = int((flagged & planted).sum())
                    row[f"P/R at {f}"] = f"{tp / max(int(flagged.sum()), 1):.2f}/{tp / planted.sum():.2f} ({int(flagged.sum())})"
                row["s"] = seconds
                rows.append(row)
                print_table(rows[-1:])
    print_table(rows, f"Planted outliers, seed {a.seed}: AP of outlier_score; precision/recall (rows flagged) of Tukey's fence Q3 + f x IQR")


if __name__ == "__main__":
    main()
