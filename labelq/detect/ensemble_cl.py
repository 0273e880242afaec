"""``ensemble_cl``: confident learning on the mean pred_probs of several models (cleanlab's advice for ensembles).

The models, each out-of-sample for its own row:

- the audit's model (the context's ``pred_probs``);
- any other models' pred_probs the caller puts in the context (``DetectContext.more_probs``);
- where the audit has a feature space, a k-nearest-neighbour classifier on it: a row's class probabilities
  are its ``k`` nearest *other* rows' label shares (``knn_vote.votes_of``), so they never saw the row's own
  label, and they cost nothing more once the neighbours are found (the ensemble finds them once).

The rows' probabilities are averaged with equal weights, and confident learning (cleanlab's
``find_label_issues`` with ``filter_by``) flags the rows, scores them by the mean's self-confidence and
suggests the mean's most likely class. Two views that err differently (a model's decision boundary, the
neighbours' labels) rank planted errors better than either: ``bench/detectors.py``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import InputError
from .confident_learning import ConfidentLearning, Detection
from .context import DetectContext
from .knn_vote import votes_of
from .streaming_cl import whole

log = logging.getLogger(__name__)


@dataclass
class EnsembleCL:
    """The detector described above; ``k`` neighbours for the k-NN classifier, ``filter_by`` as confident learning's."""

    k: int = 10
    filter_by: str = "prune_by_noise_rate"
    name: str = "ensemble_cl"
    needs: ClassVar[tuple[str, ...]] = ("pred_probs",)  # and the feature space or more models, where there are

    def __post_init__(self) -> None:
        if not isinstance(self.k, int) or self.k < 1:
            raise InputError(f"ensemble_cl needs k >= 1 neighbours, got {self.k!r}", "use k=10")
        ConfidentLearning(filter_by=self.filter_by)  # refuses an unknown filter_by

    def models(self, ctx: DetectContext) -> dict[str, np.ndarray]:
        """Each model's ``(N, K)`` pred_probs, by name."""
        out = {"model": np.asarray(whole(ctx.pred_probs), dtype=np.float64)}
        for name, probs in ctx.more_probs.items():
            probs = np.asarray(probs, dtype=np.float64)
            if probs.shape != out["model"].shape:
                raise InputError(
                    f"model {name!r}'s pred_probs have shape {probs.shape}, the audit's {out['model'].shape}",
                    "give one row of class probabilities per row, in the audit's row and class order",
                )
            out[name] = probs
        if ctx.has("features") and len(ctx.labels) > 1:
            out["knn"] = votes_of(*ctx.neighbours(self.k), ctx.labels, ctx.n_classes)
        return out

    def detect_context(self, ctx: DetectContext) -> Detection:
        models = self.models(ctx)
        if len(models) == 1:
            log.info("ensemble_cl: one model only (no feature space, no other pred_probs): confident learning on it")
        mean = np.mean(list(models.values()), axis=0)
        detection = ConfidentLearning(filter_by=self.filter_by, name=self.name).detect(ctx.labels, mean)
        detection.extra["models"] = sorted(models)
        log.info("ensemble_cl over %s: %d rows flagged", ", ".join(models), int(detection.is_issue.sum()))
        return detection
