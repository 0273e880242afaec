"""Histogram gradient boosting that keeps its training rows' margins, for the ``margin`` detector (AUM).

Boosting is iterative as a network's epochs are: after each iteration the model has raw scores (logits) for
every training row. ``MarginHGB.fit`` reads them once more after fitting (``staged_decision_function``, one
pass that adds the trees one at a time) and keeps each row's margin, its label's score minus the best other,
averaged over the iterations: ``train_margins_``. The predictions are scikit-learn's, unchanged.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier


class MarginHGB(HistGradientBoostingClassifier):
    """``HistGradientBoostingClassifier`` with ``train_margins_`` (the area under the margin over the iterations)."""

    def fit(self, X, y, sample_weight=None):  # noqa: ANN001, ANN201 (scikit-learn's signature)
        super().fit(X, y, sample_weight=sample_weight)
        target = np.searchsorted(self.classes_, np.asarray(y))
        total, stages = np.zeros(len(target)), 0
        for raw in self.staged_decision_function(X):
            total += stage_margins(np.asarray(raw, dtype=np.float64), target)
            stages += 1
        self.train_margins_ = (total / max(stages, 1)).astype(np.float32)
        return self


def stage_margins(raw: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Each row's margin from one iteration's raw scores: ``(N,)`` log-odds of the second class for two classes
    (the first class's score is 0), else ``(N, K)`` scores; the target's score minus the best other's."""
    if raw.ndim == 1:
        return np.where(target == 1, raw, -raw)
    assigned = raw[np.arange(len(target)), target]
    others = raw.copy()
    others[np.arange(len(target)), target] = -np.inf
    return assigned - others.max(axis=1)
