"""Confident learning for multi-label rows: which tags are wrong, per row and per tag.

cleanlab's multi-label filter (``cleanlab.multilabel_classification``) treats every tag as its own
binary problem (the row has the tag or not), finds the label issues of each with confident learning,
and flags a row when any of its tags is in doubt. labelq keeps the per-tag findings: a flagged tag the
row lacks is **missing** (the model is confident the row has it), one the row holds is **extra**. The
row's ``label_score`` is cleanlab's multi-label label quality (each tag's self-confidence, pooled by an
exponential moving average that weighs the worst tags most), and its suggested tags are its given tags
with the flagged ones turned over.
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import InputError
from .confident_learning import Detection

log = logging.getLogger(__name__)


def detect_tags(tags: np.ndarray, pred_probs: np.ndarray, filter_by: str = "prune_by_noise_rate") -> Detection:
    """``tags``: ``(N, K)`` bool, the given tags; ``pred_probs``: ``(N, K)`` out-of-sample probability of each
    tag. Returns a ``Detection`` whose ``suggested_label`` is the ``(N, K)`` suggested tags and whose
    ``extra`` holds ``missing`` and ``extra`` (``(N, K)`` bool), ``tag_issues`` (per tag: rows with it,
    rows flagged missing it, rows flagged holding it wrongly) and ``class_error_rate`` (per tag, the share of
    rows whose tag is flagged)."""
    from cleanlab.multilabel_classification.filter import find_multilabel_issues_per_class
    from cleanlab.multilabel_classification.rank import get_label_quality_scores

    tags = np.asarray(tags, dtype=bool)
    probs = np.asarray(pred_probs, dtype=np.float64)
    if probs.shape != tags.shape:
        raise InputError(f"pred_probs have shape {probs.shape}, the tags {tags.shape}", "give one probability per row and tag")
    if not np.isfinite(probs).all() or (probs < 0).any() or (probs > 1).any():
        raise InputError("multi-label pred_probs must be probabilities in [0, 1], one per tag", "give each tag's probability (a sigmoid output)")
    n, k = tags.shape
    per_tag = np.zeros((n, k), dtype=bool)
    testable = np.flatnonzero(tags.any(axis=0) & ~tags.all(axis=0))  # a tag on no row or on every row has nothing to confuse
    if len(testable):
        sub = tags[:, testable]
        lists = [np.flatnonzero(row).tolist() for row in sub]
        per_tag[:, testable] = find_multilabel_issues_per_class(lists, probs[:, testable], filter_by=filter_by, n_jobs=1)
    score = get_label_quality_scores([np.flatnonzero(row).tolist() for row in tags], probs)
    is_issue = per_tag.any(axis=1)
    missing, extra = per_tag & ~tags, per_tag & tags
    tag_issues = [{"tag": t, "rows": int(tags[:, t].sum()), "missing": int(missing[:, t].sum()), "extra": int(extra[:, t].sum())} for t in range(k)]
    log.info(
        "confident learning on %d tags (%s): %d rows flagged, %d tags missing, %d extra",
        k,
        filter_by,
        int(is_issue.sum()),
        int(missing.sum()),
        int(extra.sum()),
    )
    return Detection(
        "confident_learning",
        np.clip(np.asarray(score, dtype=np.float64), 0.0, 1.0),
        is_issue,
        tags ^ per_tag,
        {
            "missing": missing,
            "extra": extra,
            "tag_issues": tag_issues,
            "class_error_rate": (per_tag.sum(axis=0) / max(n, 1)).tolist(),
            "num_label_issues_estimate": int(is_issue.sum()),
            "filter_by": filter_by,
        },
    )
