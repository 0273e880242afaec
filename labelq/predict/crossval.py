"""Out-of-sample ``pred_probs`` by stratified K-fold cross-validation, fold by fold, with a cache.

Every row is predicted by a model that did not see it. Each fold is one unit of work
(``predict_fold``), so a Prefect flow can run folds as separate, parallel tasks; finished folds are
kept in a ``FoldCache`` keyed by (data hash, model config, fold, number of folds, seed, threads per fold,
versions of labelq, numpy, scikit-learn and torch), so an
interrupted run resumes without redoing them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..errors import InputError
from ..io import FOLDS, atomic_write_bytes, release_freed_memory, table_hash
from ..labelkind import LabelKind, kind_named, kind_of
from ..packages import code_versions
from ..validation import check_n_folds
from .models import ModelSpec, resolve_model

log = logging.getLogger(__name__)


def make_folds(labels: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold index ``(N,)`` of every row: a stratified partition into ``n_folds`` parts, shuffled with ``seed``.

    The same partition as scikit-learn's ``StratifiedKFold(n_folds, shuffle=True, random_state=seed)``
    (a test checks it), without importing scikit-learn: 90 MB of an image audit's memory, whose CNN needs
    none of it. Classes are numbered by first appearance; the sorted labels are dealt round-robin to
    the folds, which sets each class's count per fold; each class's fold indices are then shuffled."""
    labels = np.asarray(labels)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    encoded = np.unique(first, return_inverse=True)[1][inverse.reshape(-1)]
    n_classes = len(first)
    ordered = np.sort(encoded)
    allocation = np.asarray([np.bincount(ordered[i::n_folds], minlength=n_classes) for i in range(n_folds)])
    rng = np.random.RandomState(seed)
    folds = np.empty(len(labels), dtype=np.int32)
    for k in range(n_classes):
        of_class = np.arange(n_folds).repeat(allocation[:, k])
        rng.shuffle(of_class)
        folds[encoded == k] = of_class
    return folds


def group_folds(groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold index ``(N,)`` of every row with the rows of a group together (a sentence's tokens): the groups, shuffled
    with ``seed``, are dealt to the fold with the fewest rows so far (largest first), so the folds' sizes stay even."""
    names, inverse, sizes = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    if len(names) < n_folds:
        raise InputError(f"{len(names)} sentences are too few for {n_folds}-fold cross-validation", "give more sentences or fewer --folds")
    order = np.random.RandomState(seed).permutation(len(names))
    order = order[np.argsort(-sizes[order], kind="stable")]
    load = np.zeros(n_folds, np.int64)
    fold_of = np.empty(len(names), np.int32)
    for g in order:
        f = int(np.argmin(load))
        fold_of[g] = f
        load[f] += sizes[g]
    return fold_of[inverse.reshape(-1)]


class FoldCache:
    """Finished folds on disk, one ``.npz`` per key (the probabilities and the key itself), written atomically.

    An entry is used only if it loads, holds its own key, and its probabilities have the fold's shape,
    are finite and non-negative, and sum to 1 in every row; anything else is a miss, logged, and the
    fold is computed again (and the entry replaced).
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = Path(directory) if directory is not None else None

    def _path(self, key: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{key}.npz"

    def has(self, key: str, shape: tuple[int, int], kind: LabelKind | None = None) -> bool:
        return self.get(key, shape, quiet=True, kind=kind) is not None

    def get(self, key: str, shape: tuple[int, int], quiet: bool = False, kind: LabelKind | None = None) -> np.ndarray | None:
        """The cached ``(rows, K)`` probabilities of ``key``, or None if absent or unusable (as pred_probs of
        the ``kind`` of label: rows that sum to 1 for one class a row)."""
        path = self._path(key)
        if path is None or not path.exists():
            return None
        problem = None
        try:
            with np.load(path, allow_pickle=False) as z:
                stored_key, probs = (str(z["key"]) if "key" in z.files else None), z["probs"]
        except Exception as exc:  # a truncated or foreign file: zipfile, numpy and OS errors
            problem = f"unreadable ({type(exc).__name__}: {exc})"
        else:
            if stored_key != key:
                problem = "written for another key" if stored_key else "holds no key (written by an older labelq or by hand)"
            elif probs.shape != tuple(shape):
                problem = f"has shape {probs.shape}, the fold needs {tuple(shape)}"
            elif not np.isfinite(probs).all():
                problem = "holds NaN or infinite values"
            else:
                problem = (kind or kind_named("single")).probs_problem(probs)
        if problem is None:
            return probs
        if not quiet:
            log.warning("fold cache entry %s is %s: computing the fold again", path.name, problem)
        return None

    def put(self, key: str, probs: np.ndarray, margins: np.ndarray | None = None) -> None:
        """Keep a fold's probabilities, and its training rows' margins (AUM) where the model recorded them."""
        path = self._path(key)
        if path is None:
            return
        import io

        buf = io.BytesIO()
        np.savez(buf, probs=probs, key=np.array(key), **({"margins": margins} if margins is not None else {}))
        atomic_write_bytes(path, buf.getvalue())

    def margins(self, key: str, n_train: int) -> np.ndarray | None:
        """The fold's training rows' margins ``(n_train,)``, or None where the entry holds none (a model without
        epochs, an entry from before margins were kept) or holds them in another shape."""
        path = self._path(key)
        if path is None or not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                margins = z["margins"] if "margins" in z.files and str(z["key"]) == key else None
        except Exception:  # unreadable: ``get`` says so when the fold is read
            return None
        return margins if margins is not None and margins.shape == (n_train,) and np.isfinite(margins).all() else None


CODE_PACKAGES = ("labelq", "numpy", "scikit-learn", "torch")  # an upgrade of any of them invalidates cached folds


@dataclass
class FoldPlan:
    """Everything a fold needs: inputs, labels, the partition, the model and the cache key parts.
    ``labels``: as the ``kind`` of label holds them (``(N,)`` class indices, or the ``(N, K)`` tag matrix),
    and the kind fits each fold's model (one binary model per tag for tags)."""

    X: np.ndarray
    labels: np.ndarray
    folds: np.ndarray
    n_classes: int
    spec: ModelSpec
    seed: int
    data_hash: str
    fold_threads: int | None = None  # compute threads per fold: 1 and 2 threads round differently
    code_versions: dict[str, str | None] = field(default_factory=lambda: code_versions(CODE_PACKAGES))
    kind: LabelKind = field(default_factory=lambda: kind_named("single"))

    @property
    def n_folds(self) -> int:
        return int(self.folds.max()) + 1

    def fold_shape(self, fold: int) -> tuple[int, int]:
        """``(rows held out in fold, K)``: the shape of the fold's predictions."""
        return int((self.folds == fold).sum()), self.n_classes

    def key(self, fold: int) -> str:
        """The fold's cache key: data, model config, fold, folds, seed, threads, and the versions of the code that computes it."""
        parts = {
            "data": self.data_hash,
            "model": self.spec.config(),
            "fold": fold,
            "n_folds": self.n_folds,
            "seed": self.seed,
            "fold_threads": self.fold_threads,
            "code": self.code_versions,
        }
        parts.update(self.kind.key_parts)  # single-label keys stay as they were
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def plan_folds(
    examples: pa.Table,
    model: str | ModelSpec | None = "auto",
    n_folds: int = 5,
    seed: int = 0,
    model_params: dict | None = None,
    fold_threads: int | None = None,
    cache_dir: Path | None = None,
) -> FoldPlan:
    """Validate the examples for K-fold cross-validation and prepare the folds' shared inputs (``fold_threads``: see ``FoldPlan``;
    ``cache_dir``: where an embedding model's vectors are cached)."""
    info = S.info_of(examples)
    n_folds = check_n_folds(n_folds)
    kind = kind_of(info)
    labels = kind.labels(examples, check=True)
    kind.check_folds(labels, info.class_names, n_folds)
    spec = resolve_model(model, info.modality, model_params, kind)
    t0 = time.perf_counter()
    X = spec.features(examples, cache_dir)
    log.info("prepared %s inputs for model %s in %.1fs", f"{len(X):,}", spec.name, time.perf_counter() - t0)
    data_hash = table_hash(examples.select([S.ID, S.LABEL, *info.inputs]))
    release_freed_memory()  # the decoding's garbage goes before a model claims memory
    groups = kind.groups(examples)
    folds = make_folds(kind.strata(labels), n_folds, seed) if groups is None else group_folds(groups, n_folds, seed)
    return FoldPlan(X, labels, folds, len(info.class_names), spec, seed, data_hash, fold_threads, kind=kind)


def predict_fold(plan: FoldPlan, fold: int, cache: FoldCache | None = None) -> np.ndarray:
    """Fit on every fold but ``fold``, predict ``fold``: probabilities ``(n_fold_rows, K)`` in row order."""
    cache = cache or FoldCache(None)
    key = plan.key(fold)
    cached = cache.get(key, plan.fold_shape(fold), kind=plan.kind)
    if cached is not None:
        log.info("fold %d/%d: reused from cache", fold + 1, plan.n_folds)
        return cached
    train, test = plan.folds != fold, plan.folds == fold
    t0 = time.perf_counter()
    log.info("fold %d/%d: fitting %s on %s rows", fold + 1, plan.n_folds, plan.spec.name, f"{int(train.sum()):,}")
    model = plan.spec.build(seed=plan.seed + fold)
    try:
        probs = plan.kind.fit_predict(model, plan.X[train], plan.labels[train], plan.X[test], plan.n_classes)
    except ValueError as exc:
        if "no terms remain" not in str(exc):
            raise
        raise InputError(
            f"{plan.spec.name} found no word in two or more texts of fold {fold + 1}'s training rows: the texts are too short or too few for TF-IDF",
            f"use --model {'embed-ridge' if plan.kind.model_task == 'regression' else 'embed-logreg'} (pretrained embeddings read single words), "
            "or give longer texts",
        ) from exc
    release_freed_memory()
    acc, what = plan.kind.accuracy(plan.labels[test], probs), plan.kind.accuracy_name
    log.info("fold %d/%d: done in %.1fs, %s on the held-out fold %.3f", fold + 1, plan.n_folds, time.perf_counter() - t0, what, acc)
    cache.put(key, probs, getattr(model, "train_margins_", None))  # a model trained in epochs (the CNN) recorded them
    del model
    release_freed_memory()
    return probs


def one_vs_rest(model):
    """``model`` made multi-label: one binary copy of its classifier per tag (scikit-learn's ``OneVsRestClassifier``);
    a pipeline's feature steps (TF-IDF) are fitted once, before the per-tag classifiers."""
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        *steps, (name, last) = model.steps
        return Pipeline([*steps, (name, OneVsRestClassifier(last))])
    return OneVsRestClassifier(model)


def training_margins(plan: FoldPlan, cache: FoldCache) -> np.ndarray | None:
    """Each row's area under the margin (AUM), averaged over the folds whose model trained on it: ``(N,)``, or None
    unless every fold's model recorded its training rows' margins (``train_margins_``: the CNN, ``hgb``) in ``cache``."""
    total, seen = np.zeros(len(plan.labels)), np.zeros(len(plan.labels))
    for fold in range(plan.n_folds):
        train = plan.folds != fold
        margins = cache.margins(plan.key(fold), int(train.sum()))
        if margins is None:
            return None
        total[train] += margins
        seen[train] += 1
    return np.where(seen > 0, total / np.maximum(seen, 1), np.nan)


def assemble(plan: FoldPlan, fold_probs: list[np.ndarray]) -> np.ndarray:
    """Put each fold's predictions back in row order: ``(N, K)`` float32."""
    out = np.zeros((len(plan.labels), plan.n_classes), dtype=np.float32)
    for f, probs in enumerate(fold_probs):
        out[plan.folds == f] = probs
    return out


def cross_val_pred_probs(
    examples: pa.Table, model: str | ModelSpec | None = "auto", n_folds: int = 5, seed: int = 0, cache_dir: Path | None = None, model_params: dict | None = None
) -> pa.Table:
    """Out-of-sample pred_probs for every row, sequentially (the flow runs folds as parallel tasks). ``cache_dir``: a
    cache root, as ``Store.cache_dir`` (finished folds in ``folds/``, an embedding model's vectors in ``embeddings/``).

    Returns the pred_probs table of the data contract (``id``, ``fold``, ``pred_probs``, ``model``).
    """
    plan = plan_folds(examples, model, n_folds, seed, model_params, cache_dir=cache_dir)
    cache = FoldCache(Path(cache_dir) / FOLDS if cache_dir is not None else None)
    probs = assemble(plan, [predict_fold(plan, f, cache) for f in range(plan.n_folds)])
    return pred_probs_table(examples[S.ID], probs, plan.folds, plan.spec.name)


def pred_probs_table(ids: pa.ChunkedArray | list, probs: np.ndarray, folds: np.ndarray | None, model: str) -> pa.Table:
    """Build the contract's pred_probs table from ``(N, K)`` probabilities."""
    n, k = probs.shape
    flat = pa.array(np.ascontiguousarray(probs, dtype=np.float32).reshape(-1))  # float32 arrays: no copy
    return pa.table(
        {
            S.ID: pa.array(ids, pa.string()) if not isinstance(ids, pa.ChunkedArray) else ids.cast(pa.string()),
            S.FOLD: pa.array(folds if folds is not None else np.full(n, -1), pa.int32()),
            S.PRED_PROBS: pa.FixedSizeListArray.from_arrays(flat, k),
            S.MODEL: pa.repeat(pa.scalar(model, pa.string()), n),
        },
        schema=S.pred_probs_schema(k),
    )


def pred_probs_array(table: pa.Table) -> np.ndarray:
    """``(N, K)`` float64 array from a pred_probs table's ``pred_probs`` column."""
    return pred_probs_view(table).astype(np.float64)


def pred_probs_view(table: pa.Table) -> np.ndarray:
    """``(N, K)`` float32 values of a pred_probs table as stored: a read-only view of the table's buffer
    when it is one chunk (no copy), else one copy. The audit computes on this (a million rows x 100
    classes: 400 MB, where a float64 copy would add 800 MB)."""
    col = table[S.PRED_PROBS]
    k = col.type.list_size
    col = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    return col.flatten().to_numpy(zero_copy_only=False).reshape(-1, k)
