"""Checks done once at the boundary; each returns the converted value or raises ``InputError``.

Messages name the values that were wrong and the fix.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import InputError

log = logging.getLogger(__name__)

SUM_TOLERANCE = 1e-2  # rows of pred_probs further than this from 1 are refused, closer ones renormalized


def _preview(values: Sequence, n: int = 5) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:n])
    return shown + (f", ... ({len(values)} in all)" if len(values) > n else "")


def check_ids(ids: Sequence[str] | pa.Array | pa.ChunkedArray) -> pa.Array:
    """Ids must be non-empty strings, unique. Returns them as an Arrow string array (checked without a Python loop)."""
    col = ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) else pa.array([None if v is None else str(v) for v in ids], pa.string())
    if pa.types.is_floating(col.type):  # a float id column: NaN would become the id "nan", and 1.0 the id "1.0"
        nan = pc.indices_nonzero(pc.is_nan(col).fill_null(False)).to_numpy()
        if len(nan):
            raise InputError(
                f"{plural(len(nan), 'row has', 'rows have')} NaN as its id (rows {_preview(nan.tolist())})",
                "fill the id column (store ids as text or integers), or leave --id-column out so labelq derives stable ids from the content",
            )
    col = col.cast(pa.string())
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    empty = pc.or_(col.is_null(), pc.equal(col, "")).fill_null(True)
    missing = pc.indices_nonzero(empty).to_numpy()
    if len(missing):
        raise InputError(
            f"{plural(len(missing), 'row has', 'rows have')} an empty id (rows {_preview(missing.tolist())})",
            "fill the id column, or leave --id-column out so labelq derives stable ids from the content",
        )
    # sorted, equal neighbours are repeats: at 1M ids +19 MB and 0.16 s, where a hash table (pc.unique) took +68 MB and 0.34 s
    ordered = col.take(pc.array_sort_indices(col))
    repeats = pc.equal(ordered.slice(1), ordered.slice(0, max(len(ordered) - 1, 0)))
    if pc.any(repeats).as_py():
        dup = pc.unique(ordered.slice(1).filter(repeats)).to_pylist()
        raise InputError(
            f"ids must be unique, but {plural(len(dup), 'id occurs', 'ids occur')} more than once: {_preview(dup)}",
            "choose a unique id column, or leave --id-column out so labelq derives stable ids",
        )
    return col


def check_labels(labels: np.ndarray, class_names: Sequence[str], ids: Sequence[str] | None = None) -> np.ndarray:
    """Integer labels in ``0..K-1``; returns an ``int64`` array of shape ``(N,)``."""
    labels = np.asarray(labels)
    k = len(class_names)
    if labels.ndim != 1:
        raise InputError(f"labels must be one-dimensional, got shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise InputError(f"labels must be integers at this stage, got dtype {labels.dtype}")
    bad = np.flatnonzero((labels < 0) | (labels >= k))
    if len(bad):
        where = [ids[i] for i in bad] if ids is not None else bad.tolist()
        raise InputError(
            f"{plural(len(bad), 'label is', 'labels are')} outside the class list of {plural(k, 'class', 'classes')} (values {_preview(np.unique(labels[bad]).tolist())}; rows {_preview(where)})",
            "give the full class list (--classes) or fix those labels",
        )
    return labels.astype(np.int64)


def check_classes_for_folds(labels: np.ndarray, class_names: Sequence[str], n_folds: int) -> None:
    """Cross-validation needs at least two classes and at least ``n_folds`` examples per class (``labels``:
    ``(N,)`` class indices, or an ``(N, K)`` tag matrix: rows per tag)."""
    if len(labels) == 0:
        raise InputError("the dataset is empty: there are no rows to audit", "check the source path, split and filters")
    counts = labels.sum(axis=0).astype(np.int64) if labels.ndim == 2 else np.bincount(labels, minlength=len(class_names))
    present = np.flatnonzero(counts)
    if len(present) < 2:
        only = class_names[present[0]] if len(present) else "none"
        raise InputError(
            f"the labels hold a single class ({only!r}); label errors cannot be found without at least two classes",
            "check the label column and the split",
        )
    if n_folds < 2:
        raise InputError(f"n_folds must be at least 2, got {n_folds}", "use --folds 5 (the default) or another value >= 2")
    small = [(class_names[c], int(counts[c])) for c in range(len(class_names)) if counts[c] < n_folds]
    if small:
        listed = ", ".join(f"{name!r}: {n}" for name, n in small[:5]) + (f", ... ({len(small)} in all)" if len(small) > 5 else "")
        fewest = min(n for _, n in small)
        singles = [name for name, n in small if n < 2]
        if singles:
            fix = (
                f"cross-validation needs at least 2 examples of every class: add examples of {plural(len(singles), 'class', 'classes')} "
                f"with one ({_preview(singles, 3)}), or merge or drop them (drop: filter those rows out of the source)"
            )
        else:
            fix = f"use --folds {fewest}, merge or drop those classes, or add examples"
        raise InputError(
            f"{plural(len(small), 'class has', 'classes have')} fewer examples than the {n_folds} folds ({listed}); every fold must see every class",
            fix,
        )


def plural(n: int, one: str, many: str) -> str:
    """``'1 class'``, ``'3 classes'``: ``n`` with the word that fits it."""
    return f"{n:,} {one if n == 1 else many}"


def check_n_folds(n_folds: int) -> int:
    if not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise InputError(f"n_folds must be an integer >= 2, got {n_folds!r}", "use --folds 5 (the default)")
    return int(n_folds)


def check_pred_probs(pred_probs: np.ndarray, n_rows: int, n_classes: int) -> np.ndarray:
    """Out-of-sample probabilities of shape ``(N, K)``: finite, non-negative, rows summing to 1.

    Rows off by more than 1e-4 but at most ``SUM_TOLERANCE`` are renormalized with a warning (in a copy);
    others off by more are refused. Returns the array itself when nothing needed renormalizing: float32
    and float64 keep their type (confident learning's results are cleanlab's on this very array),
    integers become float64. Checked a chunk of rows at a time, so no N x K temporary is made.
    """
    p = np.asarray(pred_probs)
    if p.dtype.kind not in "fiu":
        raise InputError(f"pred_probs must be numeric, got dtype {p.dtype}")
    if p.dtype not in (np.float32, np.float64):
        p = p.astype(np.float64)
    check_pred_probs_shape(p.shape, n_rows, n_classes)
    step = max(1, 2**22 // max(n_classes, 1))
    near = scan_pred_probs((start, p[start : start + step]) for start in range(0, n_rows, step))
    if len(near):
        p = p.copy()
        p[near] /= p[near].sum(axis=1, keepdims=True)
    return p


def check_pred_probs_shape(shape: tuple[int, ...], n_rows: int, n_classes: int) -> None:
    if len(shape) != 2 or tuple(shape) != (n_rows, n_classes):
        raise InputError(
            f"pred_probs must have shape (rows, classes) = ({n_rows}, {n_classes}), got {tuple(shape)}",
            "give one row per example (in the data's row order for .npy, or keyed by id in Parquet) and one column per class",
        )


def scan_pred_probs(chunks, sum_to_one: bool = True, bounded: bool = True) -> np.ndarray:
    """Check ``(first row, chunk)`` pairs of pred_probs (see ``check_pred_probs``); returns the rows to renormalize.
    Without ``sum_to_one``: a probability per class (a tag), each in [0, 1] (rows need not sum to 1; none is renormalized).
    Not ``bounded``: predicted values (a regression target's), any finite numbers."""
    bad, neg, far, sums_far, near, above = [], [], [], [], [], []
    for start, chunk in chunks:
        bad.append(np.flatnonzero(~np.isfinite(chunk).all(axis=1)) + start)
        if not bounded:
            continue
        neg.append(np.flatnonzero((chunk < 0).any(axis=1)) + start)
        if not sum_to_one:
            above.append(np.flatnonzero((chunk > 1).any(axis=1)) + start)
            continue
        sums = chunk.sum(axis=1, dtype=np.float64)
        off = np.abs(sums - 1.0)
        far.append(np.flatnonzero(off > SUM_TOLERANCE) + start)
        sums_far.append(sums[off > SUM_TOLERANCE])
        near.append(np.flatnonzero((off > 1e-4) & (off <= SUM_TOLERANCE)) + start)  # float32 rounding is not worth a warning
    bad, neg, far, near, above = (np.concatenate(x) if x else np.empty(0, np.int64) for x in (bad, neg, far, near, above))
    if len(above):
        raise InputError(
            f"pred_probs of one probability per tag hold values above 1 in {len(above)} rows (rows {_preview(above.tolist())})",
            "pass each tag's probability (apply a sigmoid to logits), one column per tag",
        )
    if len(bad):
        raise InputError(f"pred_probs hold NaN or infinite values in {len(bad)} rows (rows {_preview(bad.tolist())})", "recompute those predictions")
    if len(neg):
        raise InputError(
            f"pred_probs hold negative values in {len(neg)} rows (rows {_preview(neg.tolist())})",
            "pass probabilities, not logits or scores: apply a softmax first",
        )
    if len(far):
        sums = np.concatenate(sums_far)
        raise InputError(
            f"rows of pred_probs must sum to 1, but {len(far)} rows are off by more than {SUM_TOLERANCE} (rows {_preview(far.tolist())}, sums {_preview(np.round(sums, 4).tolist())})",
            "pass probabilities (apply a softmax to logits), one column per class",
        )
    if len(near):
        log.warning("renormalized %d rows of pred_probs that summed to within %g of 1", len(near), SUM_TOLERANCE)
    return near


def check_fraction(value: float, name: str) -> float:
    if not isinstance(value, (int, float)) or math.isnan(value) or not 0.0 <= value <= 1.0:
        raise InputError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)
