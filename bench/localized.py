"""Localized targets (ReLabel) where the truth is known: two real Fashion-MNIST items side by side.

Each 28 x 56 image holds two training items (left, right) and is labelled with only one of them, drawn
at random. labelq makes label maps with cross-validated FCNs (every image's map from a model that did
not see it). Then, for random resized crops of those images:

1. how often the pooled target of a crop (RoIAlign on the label map + softmax) names the item that is
   actually in the crop (the item covering most of the crop; crops where one item covers >= 75% of the
   width), versus how often the image's single global label does;
2. the test accuracy, on the 10,000 single Fashion-MNIST test items, of a small CNN trained on random
   resized crops (resized to 28 x 28) with the pooled soft targets (soft cross-entropy) versus the same
   network and crops with the global one-hot label.

    python bench/localized.py [--pairs 20000] [--epochs 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import offline_env, print_table  # noqa: E402


def composites(images: np.ndarray, labels: np.ndarray, n: int, seed: int):
    rng = np.random.default_rng(seed)
    a, b = rng.choice(len(images), n), rng.choice(len(images), n)
    pairs = np.concatenate([images[a], images[b]], axis=2)  # (n, 28, 56)
    side = rng.integers(0, 2, n)  # 0: labelled with the left item, 1: with the right
    return pairs, np.stack([labels[a], labels[b]], 1), np.where(side == 0, labels[a], labels[b])


def train_on_crops(pairs, maps, global_labels, use_maps: bool, epochs: int, seed: int, n_classes: int = 10):
    """A small CNN on random resized crops; targets pooled from the label maps, or the global one-hot label."""
    import torch
    import torch.nn.functional as F

    from labelq.predict.torch_cnn import _build
    from labelq.relabel.localized import LocalizedCrops

    torch.manual_seed(seed)
    ds = LocalizedCrops(pairs, maps, out=28, scale=(0.2, 1.0), ratio=(0.5, 2.0), seed=seed)
    model = _build(1, n_classes, 16, 0.2)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
    onehot = torch.eye(n_classes)[torch.from_numpy(global_labels)]
    batch = 128
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        perm = np.random.default_rng((seed, epoch)).permutation(len(ds))
        model.train()
        for start in range(0, len(perm), batch):
            idx = perm[start : start + batch]
            items = [ds[int(i)] for i in idx]
            x = (torch.stack([c for c, _ in items]) - 0.286) / 0.353
            target = torch.stack([t for _, t in items]) if use_maps else onehot[idx]
            loss = -(target * F.log_softmax(model(x), dim=1)).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def main() -> None:
    offline_env()
    import torch

    from labelq.ingest.builtin import FASHION_DIR, read_idx
    from labelq.relabel.localized import cross_val_label_maps, pool_targets

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--crops", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    tr_x, tr_y = read_idx(f"{FASHION_DIR}/train-images-idx3-ubyte.gz"), read_idx(f"{FASHION_DIR}/train-labels-idx1-ubyte.gz").astype(np.int64)
    te_x, te_y = read_idx(f"{FASHION_DIR}/t10k-images-idx3-ubyte.gz"), read_idx(f"{FASHION_DIR}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    pairs, items, global_label = composites(tr_x, tr_y, args.pairs, args.seed)

    t0 = time.perf_counter()
    maps = cross_val_label_maps(pairs[..., None], global_label, 10, k=3, grid=8, n_folds=3, seed=args.seed, epochs=args.epochs)
    t_maps = time.perf_counter() - t0

    # 1. does the pooled target name the item in the crop?
    rng = np.random.default_rng(args.seed + 1)
    from labelq.relabel.localized import random_resized_box

    idx = rng.integers(0, len(pairs), args.crops)
    boxes = np.array([random_resized_box(rng, (28, 56), (0.2, 1.0), (0.5, 2.0)) for _ in idx])
    left = np.clip(np.minimum(boxes[:, 2], 28) - boxes[:, 0], 0, None) / (boxes[:, 2] - boxes[:, 0])
    clear = (left >= 0.75) | (left <= 0.25)
    dominant = np.where(left >= 0.5, items[idx, 0], items[idx, 1])
    pooled = pool_targets(maps, idx, torch.tensor(boxes, dtype=torch.float32), (28, 56)).numpy()
    full_box = torch.tensor([[0, 0, 56, 28]] * len(idx), dtype=torch.float32)
    whole = pool_targets(maps, idx, full_box, (28, 56)).numpy()
    rows = []
    for name, sel in (("crops where one item covers >= 75% of the width", clear), ("all crops", np.ones(len(idx), bool))):
        rows.append(
            {
                "crops": name,
                "n": int(sel.sum()),
                "global label names the item": float((global_label[idx] == dominant)[sel].mean()),
                "pooled target (argmax) names the item": float((pooled.argmax(1) == dominant)[sel].mean()),
                "label map pooled over the whole image names it": float((whole.argmax(1) == dominant)[sel].mean()),
            }
        )
    print_table(rows, f"Localized targets on {args.pairs:,} two-item Fashion-MNIST images (label maps: 3-fold FCN, top-3, 8x8 grid, {t_maps:.0f}s)")
    print()

    # 2. train with pooled targets vs the global label; test on single items
    results = []
    for name, use_maps in (("global label (one-hot)", False), ("pooled label-map targets (ReLabel)", True)):
        t0 = time.perf_counter()
        model = train_on_crops(pairs[..., None], maps, global_label, use_maps, args.epochs, args.seed)
        with torch.inference_mode():
            x = (torch.from_numpy(te_x[:, None].astype(np.float32) / 255.0) - 0.286) / 0.353
            acc = float((torch.cat([model(x[i : i + 1000]) for i in range(0, len(x), 1000)]).argmax(1).numpy() == te_y).mean())
        results.append({"training targets": name, "test accuracy (10,000 single items)": acc, "train s": round(time.perf_counter() - t0, 1)})
    print_table(results, f"Small CNN trained {args.epochs} epochs on random resized crops of the {args.pairs:,} two-item images")


if __name__ == "__main__":
    main()
