"""Multi-label rows: each row's ``label`` is a list of tag indices (``list<int64>``, Hugging Face
``Sequence(ClassLabel)``), not one class index.

In numpy the tags of N rows over K tags are an ``(N, K)`` bool matrix (``tag_matrix``); in Arrow,
sorted lists of tag indices (``tag_lists``). A dataset is multi-label when its examples' metadata says
so (``ExamplesInfo.multi_label``, set by ingest when the label column holds lists, JSON lists or
separated tags); every version of a dataset is one or the other.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .errors import InputError

TAGS_TYPE = pa.list_(pa.int64())


def tag_matrix(tags: pa.Array | pa.ChunkedArray, n_tags: int) -> np.ndarray:
    """``(N, K)`` bool: ``out[i, t]`` is True when row ``i``'s list holds tag ``t`` (a null list: no tags)."""
    if isinstance(tags, pa.ChunkedArray):
        tags = tags.combine_chunks() if tags.num_chunks != 1 else tags.chunk(0)
    tags = tags.fill_null(pa.scalar([], tags.type)) if tags.null_count else tags
    flat = tags.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    rows = np.repeat(np.arange(len(tags)), np.diff(tags.offsets.to_numpy()))
    if len(flat) and (flat.min() < 0 or flat.max() >= n_tags):
        raise InputError(f"tag indices must be in 0..{n_tags - 1}, got {sorted(set(flat[(flat < 0) | (flat >= n_tags)].tolist()))[:10]}", "fix the tags")
    out = np.zeros((len(tags), n_tags), dtype=bool)
    out[rows, flat] = True
    return out


def tag_lists(matrix: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """The rows of an ``(N, K)`` bool matrix as sorted tag lists (``list<int64>``); null where ``valid`` is False."""
    matrix = np.asarray(matrix, dtype=bool)
    rows, cols = np.nonzero(matrix)  # row-major: each row's tags in order
    offsets = np.concatenate([[0], np.cumsum(matrix.sum(axis=1))]).astype(np.int32)
    mask = None if valid is None else pa.array(~np.asarray(valid, dtype=bool))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(cols.astype(np.int64)), type=TAGS_TYPE, mask=mask)


def effective_tags(tags: np.ndarray, corrected: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``(N, K)``: each row's corrected tags (``corrected_label``) where it has a correction, else its given
    ``tags``; the twin of ``schema.effective_label`` (SQL's ``rows.effective_label``) for tag lists."""
    has = ~corrected.is_null().to_numpy(zero_copy_only=False)
    return np.where(has[:, None], tag_matrix(corrected, tags.shape[1]), tags)


def sure_tags(tags: np.ndarray, flagged: np.ndarray, pred_probs: np.ndarray, confidence: float) -> np.ndarray:
    """``(N, K)``: the ``flagged`` tags the model holds the other way with at least ``confidence`` (a missing
    tag's probability, an extra tag's 1 - probability): what an auto-fix or a re-label turns over."""
    return flagged & (np.where(tags, 1 - pred_probs, pred_probs) >= confidence)


def class_counts(labels: np.ndarray, n_classes: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Rows per class (per tag for an ``(N, K)`` tag matrix), over ``rows`` (a bool mask) when given."""
    labels = labels if rows is None else labels[rows]
    if labels.ndim == 2:
        return labels.sum(axis=0).astype(np.int64)
    return np.bincount(labels, minlength=n_classes)
