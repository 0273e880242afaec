"""A corrected-test-set benchmark report on Fashion-MNIST, end to end.

Four different models are trained on the 60,000 training images (logistic regression, histogram
gradient boosting, an MLP, labelq's small CNN) and predict the 10,000 test images. labelq audits the
test split (CNN, 5-fold cross-validation, confident learning), re-labels it (confident corrections,
90% label sets), and writes the benchmark report (HTML, Markdown, JSON) from the models' predictions:

    labelq audit fashion-mnist --split test --name fashion-test
    labelq relabel fashion-test
    labelq report benchmark fashion-test --predictions predictions.parquet

Nobody checked a random sample of these test labels here, so the error-rate estimate is not design-based;
the report says how many random checks would make it so.

    python bench/benchmark_fashion.py [--work bench/out/benchmark_fashion]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import offline_env, print_table  # noqa: E402


def models(seed: int) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from labelq.predict.torch_cnn import CNNClassifier

    return {
        "logistic regression": lambda: make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=200)),
        "gradient boosting": lambda: HistGradientBoostingClassifier(max_iter=60, learning_rate=0.2, random_state=seed),
        "MLP (256)": lambda: make_pipeline(StandardScaler(), MLPClassifier((256,), max_iter=12, random_state=seed)),
        "small CNN": lambda: CNNClassifier(seed=seed),
    }


def main() -> None:
    offline_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    import pyarrow as pa
    import pyarrow.parquet as pq

    from labelq.benchmark.report import benchmark_step
    from labelq.ingest.builtin import FASHION_CLASSES, FASHION_DIR, read_idx
    from labelq.pipeline import audit
    from labelq.relabel import relabel

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path(__file__).parent / "out" / "benchmark_fashion")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    store = args.work / "store"
    tr_x = read_idx(f"{FASHION_DIR}/train-images-idx3-ubyte.gz")
    tr_y = read_idx(f"{FASHION_DIR}/train-labels-idx1-ubyte.gz").astype(np.int64)
    te_x = read_idx(f"{FASHION_DIR}/t10k-images-idx3-ubyte.gz")

    t0 = time.perf_counter()
    audited = audit(source="fashion-mnist", split="test", name="fashion-test", store=str(store), seed=args.seed)
    rel = relabel(name="fashion-test", store=str(store))
    t_audit = time.perf_counter() - t0
    ids = rel.version.read(columns=["id"])["id"].to_pylist()
    assert ids == [f"test-{i:05d}" for i in range(len(te_x))]

    preds, timing = {}, []
    for name, make in models(args.seed).items():
        t1 = time.perf_counter()
        model = make()
        flat = name != "small CNN"
        model.fit(tr_x.reshape(len(tr_x), -1) / 255.0 if flat else tr_x, tr_y)
        preds[name] = np.asarray(model.predict(te_x.reshape(len(te_x), -1) / 255.0 if flat else te_x)).astype(np.int64)
        timing.append({"model": name, "train + predict s": round(time.perf_counter() - t1, 1)})
        logging.info("%s trained", name)
    table = pa.table(
        {"id": ids * len(preds), "model": [m for m in preds for _ in ids], "predicted_label": [FASHION_CLASSES[c] for m in preds for c in preds[m]]}
    )
    path = args.work / "predictions.parquet"
    pq.write_table(table, path)
    paths = benchmark_step("fashion-test", str(path), str(store), n_boot=1000, seed=args.seed)
    print(paths["md"].read_text())
    print_table(timing, f"Models (audit + relabel of the test split: {t_audit:.0f}s, {audited.n_label_issues:,} flagged, {rel.n_corrected:,} corrected)")
    print("\n".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
