"""Does re-labeling pay? Test accuracy on Fashion-MNIST when training on labelq's re-labeled training set
versus the noisy one.

The 60,000 training labels get 10% asymmetric flips (each class to the class a person would confuse
it with, as in ``detect_noise.py``). labelq audits them (CNN, 5-fold cross-validation, confident
learning), re-labels (``labelq relabel``: confident corrections at p >= 0.9) and exports training sets
by policy (``labelq export``). The same CNN (``CNNClassifier`` defaults, same seed) is trained on each
and scored on the 10,000 clean test labels. "clean labels" is the ceiling: the training set without
the flips.

    python bench/relabel_gain.py [--noise 0.1] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import offline_env, print_table  # noqa: E402
from detect_noise import noisy_fashion  # noqa: E402


def main() -> None:
    import logging

    offline_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    import pyarrow as pa
    import pyarrow.parquet as pq

    from labelq.ingest.builtin import FASHION_DIR, read_idx
    from labelq.ingest.images import encode_png
    from labelq.pipeline import audit
    from labelq.predict.torch_cnn import CNNClassifier
    from labelq.relabel import relabel
    from labelq.relabel.export import export_training

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path(__file__).parent / "out" / "relabel_gain")
    args = ap.parse_args()
    images, true, noisy, flipped = noisy_fashion(60000, args.noise, args.seed)
    te_x = read_idx(f"{FASHION_DIR}/t10k-images-idx3-ubyte.gz")
    te_y = read_idx(f"{FASHION_DIR}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    args.work.mkdir(parents=True, exist_ok=True)
    src = args.work / "noisy-train.parquet"
    if not src.exists():
        pq.write_table(pa.table({"id": [f"train-{i:05d}" for i in range(len(noisy))], "label": noisy, "image": encode_png(images)}), src)
    store = args.work / "store"
    t0 = time.perf_counter()
    res = audit(source=str(src), name="fashion-noisy", store=str(store), seed=args.seed)  # the store's fold cache makes reruns fast
    t_audit = time.perf_counter() - t0
    rel = relabel(name="fashion-noisy", store=str(store))
    rel_na = relabel(name="fashion-noisy", store=str(store), version=res.version.number, noise_aware=True)
    kinds_rows = []
    for label, version in (("default", rel.version), ("--noise-aware", rel_na.version)):
        t = version.read(columns=["id", "issue_kind", "corrected_label"])
        idx = np.array([int(i.split("-")[1]) for i in t["id"].to_pylist()])
        kind = np.array(t["issue_kind"].to_pylist())
        fixed = t["corrected_label"].fill_null(-1).to_numpy()
        for k in ("wrong_label", "multi_label", "ambiguous", "ok"):
            sel = kind == k
            kinds_rows.append(
                {
                    "relabel": label,
                    "kind": k,
                    "rows": int(sel.sum()),
                    "share truly flipped": float(flipped[idx][sel].mean()) if sel.any() else None,
                    "corrections right": float((fixed[sel] == true[idx][sel]).mean()) if k == "wrong_label" and sel.any() else None,
                }
            )
    print_table(kinds_rows, "Issue kinds against the injected flips")
    print()
    everything = np.arange(len(noisy))
    rows = [(f"noisy labels ({args.noise:.0%} flipped)", everything, noisy), ("clean labels (ceiling)", everything, true)]
    id_order = {f"train-{i:05d}": i for i in range(len(noisy))}
    for version, policy, note in ((rel.version, "auto-fix", ""), (rel.version, "drop-issues", ""), (rel_na.version, "auto-fix", ", --noise-aware")):
        out_dir = args.work / f"{policy}{note.replace(', --', '-')}"
        m = export_training(version, out_dir, policy, overwrite=True)
        t = pq.read_table(out_dir / "all.parquet", columns=["id", "label"])
        idx = np.array([id_order[i] for i in t["id"].to_pylist()])
        rows.append((f"labelq {policy}{note} ({m['relabeled']:,} relabeled, {m['dropped']:,} dropped)", idx, t["label"].to_numpy()))
    out = []
    for name, idx, y in rows:
        t1 = time.perf_counter()
        model = CNNClassifier(seed=args.seed).fit(images[idx], y)
        acc = float((model.predict(te_x) == te_y).mean())
        out.append(
            {
                "training set": name,
                "rows": len(idx),
                "wrong labels in it": float((y != true[idx]).mean()),
                "test accuracy (clean test labels)": acc,
                "train s": round(time.perf_counter() - t1, 1),
            }
        )
    print_table(
        out,
        f"Fashion-MNIST, {args.noise:.0%} asymmetric flips: training on noisy vs re-labeled labels "
        f"(audit {t_audit:.0f}s, {res.n_label_issues:,} flagged; kinds {rel.kinds}; noise-aware kinds {rel_na.kinds})",
    )


if __name__ == "__main__":
    main()
