"""Nearest-neighbour libraries for the near-duplicate and outlier checks, measured side by side.

The checks need, for every row, its k nearest rows in a feature space (unit vectors, Euclidean
distance). Each candidate runs in its own process (wall time, peak resident memory) on:

- ``fashion-mnist``: the 70,000 Fashion-MNIST images as labelq embeds them (pixels, centred, unit length; 784 dims);
- ``clusters-NxD``: N synthetic unit vectors in D dims around N/20 centres (an embedding model's output).

Recall@k is measured against exact neighbours of 1,000 random query rows (numpy, in the parent).
The candidates: scikit-learn's brute force (``NearestNeighbors(algorithm="brute")``, labelq's
dependency already), FAISS exact (``IndexFlatL2``) and HNSW (``IndexHNSWFlat``), hnswlib, pynndescent.
hnswlib and pynndescent are not labelq dependencies; install them to measure them
(``pip install faiss-cpu hnswlib pynndescent``). A missing library is reported, not measured.

    python bench/neighbors.py                          # fashion-mnist and clusters-200000x128, k = 10
    python bench/neighbors.py clusters-1000000x64 --only faiss-hnsw hnswlib
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import measured, offline_env, print_table  # noqa: E402

K = 10
CANDIDATES = {
    "sklearn-brute": "sklearn",
    "faiss-flat": "faiss",
    "faiss-hnsw": "faiss",
    "hnswlib": "hnswlib",
    "pynndescent": "pynndescent",
}


def make_vectors(spec: str, path: Path) -> np.ndarray:
    if spec == "fashion-mnist":
        from labelq.detect.neighbors import embed
        from labelq.ingest import load_examples
        from labelq.predict.models import read_inputs

        X = embed("image", read_inputs(load_examples("fashion-mnist")))
    else:
        n, d = (int(x) for x in spec.removeprefix("clusters-").split("x"))
        rng = np.random.default_rng(0)
        centres = rng.standard_normal((max(1, n // 20), d)).astype(np.float32)
        X = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.standard_normal((n, d)).astype(np.float32)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    np.save(path, X.astype(np.float32))
    return X


def run(name: str, path: str, queries: np.ndarray) -> dict:
    X = np.load(path)
    t0 = time.perf_counter()
    if name == "sklearn-brute":
        from sklearn.neighbors import NearestNeighbors

        _, idx = NearestNeighbors(n_neighbors=K + 1, algorithm="brute", n_jobs=-1).fit(X).kneighbors(X)
    elif name.startswith("faiss"):
        import faiss

        index = faiss.IndexFlatL2(X.shape[1]) if name == "faiss-flat" else faiss.IndexHNSWFlat(X.shape[1], 32)
        if name == "faiss-hnsw":
            index.hnsw.efConstruction, index.hnsw.efSearch = 80, 64
        index.add(X)
        idx = np.concatenate([index.search(X[s : s + 65536], K + 1)[1] for s in range(0, len(X), 65536)])
    elif name == "hnswlib":
        import hnswlib

        index = hnswlib.Index(space="l2", dim=X.shape[1])
        index.init_index(max_elements=len(X), ef_construction=80, M=16, random_seed=0)
        index.add_items(X)
        index.set_ef(64)
        idx = index.knn_query(X, k=K + 1)[0]
    else:
        from pynndescent import NNDescent

        idx = NNDescent(X, n_neighbors=K + 1, random_state=0, n_jobs=-1).neighbor_graph[0]
    seconds = time.perf_counter() - t0
    return {"seconds": round(seconds, 1), "idx": idx[queries]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="*", default=["fashion-mnist", "clusters-200000x128"])
    ap.add_argument("--only", nargs="*", default=list(CANDIDATES))
    args = ap.parse_args()
    offline_env()
    rows = []
    for spec in args.data:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "X.npy"
            X = make_vectors(spec, path)
            queries = np.random.default_rng(1).choice(len(X), min(1000, len(X)), replace=False)
            d2 = (X[queries] ** 2).sum(1)[:, None] - 2 * X[queries] @ X.T + (X**2).sum(1)[None, :]
            truth = np.argsort(d2, axis=1)[:, : K + 1]
            for name in args.only:
                row = {"data": f"{spec} ({len(X):,} x {X.shape[1]})", "library": name}
                if importlib.util.find_spec(CANDIDATES[name]) is None:
                    rows.append({**row, "seconds": "not installed"})
                    continue
                out = measured(run, name, str(path), queries)
                # recall@k over the k neighbours other than the row itself (a row is its own nearest)
                hits = [len(set(t[1:]) & set(got) - {q}) / K for q, t, got in zip(queries, truth, out["idx"], strict=True)]
                rows.append(
                    {
                        **row,
                        "seconds": out["seconds"],
                        "wall_s": out["wall_s"],
                        "peak_rss_mib": out["peak_rss_mib"],
                        f"recall@{K}": round(float(np.mean(hits)), 4),
                    }
                )
    print_table(rows, f"k = {K} nearest neighbours of every row (2 cores)")


if __name__ == "__main__":
    main()
