"""Confident learning: which labels are wrong, how sure, and what they should be (cleanlab's results,
computed by ``streaming_cl`` in a few passes over ``pred_probs``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..errors import InputError
from ..validation import check_labels, check_pred_probs
from . import streaming_cl
from .streaming_cl import FILTER_BY, SCORE_METHODS, ProbsChunks

log = logging.getLogger(__name__)


@dataclass
class Detection:
    """One detector's verdict on every row. Arrays have shape ``(N,)``; matrices ``(K, K)``.

    ``noise_matrix[i, j]`` = P(given label i | true label j); ``joint[i, j]`` = P(given i, true j);
    ``class_error_rate[i]`` = estimated share of rows given label ``i`` whose true label is another.
    """

    detector: str
    score: np.ndarray
    is_issue: np.ndarray
    suggested_label: np.ndarray
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ConfidentLearning:
    """cleanlab's ``find_label_issues`` + ``get_label_quality_scores`` + noise estimates, equal to cleanlab's.

    ``filter_by``: one of ``FILTER_BY`` (cleanlab's default ``prune_by_noise_rate``);
    ``score_method``: one of ``SCORE_METHODS``.
    """

    filter_by: str = "prune_by_noise_rate"
    score_method: str = "self_confidence"
    name: str = "confident_learning"
    reads_chunks: ClassVar[bool] = True  # detect() takes pred_probs read by chunks (a .npy never loaded whole)

    def __post_init__(self) -> None:
        if self.filter_by not in FILTER_BY:
            raise InputError(f"unknown filter_by {self.filter_by!r}", f"use one of {list(FILTER_BY)}")
        if self.score_method not in SCORE_METHODS:
            raise InputError(f"unknown score method {self.score_method!r}", f"use one of {list(SCORE_METHODS)}")

    def detect(
        self, labels: np.ndarray, pred_probs: np.ndarray | ProbsChunks, mapper: streaming_cl.Mapper = streaming_cl.in_threads, parts: list | None = None
    ) -> Detection:
        """Flags, scores and noise estimates equal to cleanlab's (``streaming_cl``), from an array or from
        ``pred_probs`` read a chunk at a time; ``mapper`` runs the passes over the row ranges ``parts``
        (by default a thread a core; ``labelq.detect.dask_cl``: on a Dask cluster)."""
        # passes 1 and 2 on a thread a core by default; the leaders' search over one range unless the caller
        # splits it (each range keeps its own pools of candidate rows: at 10M x 100, two of them took +500 MB),
        # with its classes shared out among a thread a core
        counts = streaming_cl.count(labels, pred_probs, self.score_method, mapper=mapper, parts=parts or streaming_cl.default_parts(len(labels)))
        is_issue = streaming_cl.find_label_issues(counts, pred_probs, self.filter_by, mapper=mapper, parts=parts)
        calibrated = counts.calibrated_joint()
        joint = calibrated / np.clip(float(calibrated.sum()), a_min=streaming_cl.TINY_VALUE, a_max=None)  # cleanlab's estimate_joint
        row = joint.sum(axis=1)
        class_error_rate = np.divide(row - np.diag(joint), row, out=np.zeros(len(row)), where=row > 0)
        n_est = counts.num_label_issues()
        log.info("confident learning (%s): %d label issues flagged, %d estimated", self.filter_by, int(is_issue.sum()), n_est)
        return Detection(
            self.name,
            np.clip(counts.score.astype(np.float64), 0.0, 1.0),
            is_issue,
            counts.argmax,
            {
                "joint": joint,
                "noise_matrix": streaming_cl.noise_matrix(counts),
                "class_error_rate": class_error_rate,
                "num_label_issues_estimate": n_est,
                "filter_by": self.filter_by,
            },
        )


def find_label_issues(labels: np.ndarray, pred_probs: np.ndarray, n_classes: int | None = None, filter_by: str = "prune_by_noise_rate") -> Detection:
    """Validate inputs and run confident learning; ``labels`` ``(N,)`` ints, ``pred_probs`` ``(N, K)``."""
    pred_probs = np.asarray(pred_probs)
    k = n_classes or (pred_probs.shape[1] if pred_probs.ndim == 2 else 0)
    labels = check_labels(np.asarray(labels), [str(i) for i in range(k)])
    pred_probs = check_pred_probs(pred_probs, len(labels), k)
    return ConfidentLearning(filter_by=filter_by).detect(labels, pred_probs)


def detections_table(ids: pa.ChunkedArray | list, det: Detection) -> pa.Table:
    """The long detections table of the contract for one detector."""
    n = len(det.score)
    return pa.table(
        {
            S.ID: pa.array(ids, pa.string()) if not isinstance(ids, pa.ChunkedArray) else ids,
            "detector": pa.array([det.detector] * n, pa.string()),
            "score": pa.array(det.score, pa.float64()),
            "is_issue": pa.array(det.is_issue, pa.bool_()),
            "suggested_label": pa.array(det.suggested_label, pa.int64()),
        }
    )


def noise_table(joint: np.ndarray, noise_matrix: np.ndarray) -> pa.Table:
    """The version's ``noise.parquet``: one row per (given label, true label) with confident learning's
    estimated joint ``P(given, true)`` and noise rate ``P(given | true)``. K x K values: in the manifest
    they took 23 MB of JSON and 9 s to write at 1000 classes; here a table any Parquet reader (DuckDB) queries."""
    k = len(joint)
    given, true = np.divmod(np.arange(k * k), k)
    return pa.table(
        {
            "given_label": pa.array(given, pa.int64()),
            "true_label": pa.array(true, pa.int64()),
            "joint": pa.array(np.asarray(joint, dtype=np.float64).ravel()),
            "noise_rate": pa.array(np.asarray(noise_matrix, dtype=np.float64).ravel()),
        }
    )
