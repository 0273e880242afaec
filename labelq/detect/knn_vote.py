"""``knn_vote``: training-free label errors from the labels of each row's nearest neighbours (SimiFeat-style).

SimiFeat (Zhu, Dong and Liu, ICML 2022, "Detecting Corrupted Labels Without Training a Model to Predict")
asks each row's ``k`` nearest neighbours in a feature space for their labels: where features are good,
neighbours share the true class, so a label that few neighbours carry is likely wrong. Its score for a row
is the cross-entropy of the given label under the neighbours' label distribution, and its "rank" filter
flags, within each given class, the rows of worst score up to that class's estimated noise rate.

labelq's version, in the feature space of the near-duplicate check (``labelq.detect.neighbors``: the
inputs' own space, or the pretrained embeddings with ``--neighbor-space embeddings``):

- votes: the share of a row's ``k`` nearest other rows (FAISS, ``neighbors.knn``) that carry each class,
  smoothed by one pseudo-vote spread over the classes, ``(counts + 1/K) / (k + 1)``, so no class has
  probability 0;
- score: the vote share of the given label (``self_confidence``; it ranks rows as SimiFeat's cross-entropy
  does);
- flags: confident learning's rank-based filter over the votes (``ConfidentLearning``, cleanlab's
  ``prune_by_noise_rate`` by default): the per-class noise rates come from the confident joint of the
  votes, where SimiFeat estimates them with HOC, and within each class the rows of lowest margin are flagged;
- suggested label: the class most neighbours carry.

No model is trained, so it needs only the features; it reads no pred_probs. Its flags are those of cleanlab
Datalab's label check given features and no pred_probs (the k nearest other rows' label shares, then confident
learning): the smoothing is one affine map for every row, which confident learning's comparisons do not see. ``bench/detectors.py`` sets it
beside confident learning on a model's pred_probs and beside SimiFeat's own code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import InputError
from .confident_learning import ConfidentLearning, Detection
from .context import DetectContext

log = logging.getLogger(__name__)


def neighbour_votes(features: np.ndarray, labels: np.ndarray, n_classes: int, k: int = 10) -> np.ndarray:
    """``(N, K)`` float64: the smoothed share of each row's ``k`` nearest other rows that carry each class."""
    from .neighbors import knn

    if len(labels) < 2:
        return np.full((len(labels), n_classes), 1.0 / n_classes)
    return votes_of(*knn(np.asarray(features, dtype=np.float32), k), labels, n_classes)


def votes_of(dist: np.ndarray, idx: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``neighbour_votes`` from the neighbours ``(distances, indices)`` already found."""
    found = np.isfinite(dist) & (idx >= 0)
    counts = np.zeros((len(labels), n_classes))
    rows = np.repeat(np.arange(len(labels)), found.sum(axis=1))
    np.add.at(counts, (rows, labels[idx[found]]), 1.0)
    return (counts + 1.0 / n_classes) / (found.sum(axis=1, keepdims=True) + 1.0)


@dataclass
class KnnVote:
    """The detector described above; ``k`` neighbours a row, ``filter_by`` as confident learning's."""

    k: int = 10
    filter_by: str = "prune_by_noise_rate"
    name: str = "knn_vote"
    needs: ClassVar[tuple[str, ...]] = ("features",)

    def __post_init__(self) -> None:
        if not isinstance(self.k, int) or self.k < 1:
            raise InputError(f"knn_vote needs k >= 1 neighbours, got {self.k!r}", "use k=10, SimiFeat's default")
        ConfidentLearning(filter_by=self.filter_by)  # refuses an unknown filter_by

    def detect_context(self, ctx: DetectContext) -> Detection:
        if len(ctx.labels) < 2:
            votes = np.full((len(ctx.labels), ctx.n_classes), 1.0 / ctx.n_classes)
        else:
            votes = votes_of(*ctx.neighbours(self.k), ctx.labels, ctx.n_classes)
        detection = ConfidentLearning(filter_by=self.filter_by, name=self.name).detect(ctx.labels, votes)
        detection.extra["k"] = self.k
        log.info("knn_vote (k=%d, %s): %d rows flagged", self.k, self.filter_by, int(detection.is_issue.sum()))
        return detection
