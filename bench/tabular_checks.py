"""Near duplicates and outliers planted in real tables, found by labelq and by cleanlab's Datalab on the same features.

- digits: scikit-learn's 1,797 digits, the 64 pixels as numeric columns (0..16; the edge pixels are
  near-constant). Near copies: 40 rows copied with N(0, 0.3) noise on every pixel, clipped to 0..16
  (80 rows to find: the originals and their copies). Outliers: 25 rows of uniform random pixels.
- cancer: scikit-learn's 569 breast-cancer rows, 30 columns whose scales run from 0.001 to 1,000, plus a
  column that is 0 in 99% of the rows. Near copies: 20 rows with 0.02 standard deviations of noise on
  every column. Outliers: 15 rows drawn uniformly within each column's range.

Datalab: ``Datalab(data={"label": y}, label_name="label").find_issues(features=X, issue_types=...)`` with
its defaults. labelq: ``labelq.detect.neighbors.check_neighbors`` on the same rows, as ``labelq audit``
runs it; "labelq (IQR only)" is the space before ``tabular_spread`` (each column over its interquartile
range, the standard deviation where that is 0).

    python bench/tabular_checks.py [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import offline_env, print_table  # noqa: E402


def digits_case(seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X, y, _planted(X, y, seed, copies=40, noise=lambda rng, rows: np.clip(rows + rng.normal(0, 0.3, rows.shape), 0, 16), outliers=25)


def cancer_case(seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(seed + 1)
    rare = np.zeros(len(X))
    rare[rng.choice(len(X), 6, replace=False)] = rng.uniform(1, 5, 6)  # a near-constant column
    X = np.column_stack([X, rare])
    sd = X.std(axis=0)
    return X, y, _planted(X, y, seed, copies=20, noise=lambda rng, rows: rows + rng.normal(0, 0.02, rows.shape) * sd, outliers=15)


def _planted(X: np.ndarray, y: np.ndarray, seed: int, copies: int, noise, outliers: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{case: (features, labels, planted mask)} for the near copies and the outliers."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(X), copies, replace=False)
    near = np.vstack([X, noise(rng, X[pick])])
    near_mask = np.zeros(len(near), bool)
    near_mask[pick] = near_mask[len(X) :] = True
    far = np.vstack([X, rng.uniform(X.min(axis=0), X.max(axis=0), (outliers, X.shape[1]))])
    far_mask = np.arange(len(far)) >= len(X)
    return {
        "near duplicates": (near, np.concatenate([y, y[pick]]), near_mask),
        "outliers": (far, np.concatenate([y, rng.integers(0, y.max() + 1, outliers)]), far_mask),
    }


def iqr_spread(inputs: np.ndarray) -> np.ndarray:
    """The tabular space's scale before ``tabular_spread``: the interquartile range over 1.349, the standard deviation where that is 0."""
    q1, q3 = np.percentile(inputs, [25, 75], axis=0)
    spread = np.where(q3 > q1, (q3 - q1) / 1.349, inputs.std(axis=0))
    return np.where(spread > 0, spread, 1.0)


def run_labelq(X: np.ndarray, y: np.ndarray, iqr_only: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """(near-duplicate rows, outlier rows, seconds) from labelq's check on a table of these features."""
    import pyarrow as pa

    from labelq.detect import neighbors
    from labelq.ingest import examples_from_raw
    from labelq.ingest.builtin import RawSource

    names = [f"f{j}" for j in range(X.shape[1])]
    table = pa.table({"id": [f"r{i:05d}" for i in range(len(y))], "label": y.astype(np.int64), **{n: X[:, j] for j, n in enumerate(names)}})
    examples = examples_from_raw(RawSource(table, "label", [str(c) for c in range(int(y.max()) + 1)], "id", feature_columns=names))
    spread = neighbors.tabular_spread
    if iqr_only:
        neighbors.tabular_spread = iqr_spread
    try:
        t0 = time.perf_counter()
        checks = neighbors.check_neighbors(examples)
        return checks.is_near_duplicate, checks.is_outlier, time.perf_counter() - t0
    finally:
        neighbors.tabular_spread = spread


def run_datalab(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    from cleanlab import Datalab

    t0 = time.perf_counter()
    lab = Datalab(data={"label": y}, label_name="label", verbosity=0)
    lab.find_issues(features=X, issue_types={"near_duplicate": {}, "outlier": {}})
    issues = lab.get_issues()
    return issues["is_near_duplicate_issue"].to_numpy(), issues["is_outlier_issue"].to_numpy(), time.perf_counter() - t0


def scores(found: np.ndarray, planted: np.ndarray) -> dict:
    hit = int((found & planted).sum())
    return {"flagged": int(found.sum()), "recall": round(hit / planted.sum(), 3), "precision": round(hit / max(found.sum(), 1), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    offline_env()
    rows = []
    for data, make in (("digits", digits_case), ("cancer", cancer_case)):
        _, _, cases = make(args.seed)
        for case, (X, y, planted) in cases.items():
            which = 0 if case == "near duplicates" else 1
            for method, fn in (("labelq", run_labelq), ("labelq (IQR only, before)", lambda X, y: run_labelq(X, y, iqr_only=True)), ("Datalab", run_datalab)):
                found = fn(X, y)
                rows.append(
                    {
                        "data": data,
                        "planted": f"{case} ({int(planted.sum())} rows of {len(y)})",
                        "method": method,
                        **scores(found[which], planted),
                        "s": round(found[2], 2),
                    }
                )
    print_table(rows, "Planted near duplicates and outliers in tables: labelq and cleanlab's Datalab on the same features")


if __name__ == "__main__":
    main()
