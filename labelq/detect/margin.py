"""``margin``: label errors from training dynamics, the area under the margin (AUM).

Pleiss, Zhang, Elenberg and Weinberger (NeurIPS 2020, "Identifying Mislabeled Data using the Area Under the
Margin Ranking"): while a network trains, a row's margin is its assigned label's logit minus the largest other
logit. A network learns rows whose label agrees with their look-alikes early, and rows whose label is wrong
late or never (it must memorize them against the others' pull), so averaged over the epochs, their margin
(AUM) is low or negative. The margins come free with training: each row's forward pass in its minibatch
(``CNNClassifier.train_margins_``), or gradient boosting's scores after each iteration
(``labelq.predict.boosting.MarginHGB``), averaged over the epochs or iterations and then over the K-1 folds
whose model trained on the row (``labelq.predict.training_margins``).

- score: sigmoid(AUM), in [0, 1] (0.5: the given label and the best other class are level, on average);
- flags: within each given class, the rows of lowest AUM, as many as confident learning estimates that class
  has wrong (the paper's threshold needs a second training run with planted "threshold" rows; confident
  learning's count from the same pred_probs costs nothing);
- suggested label: the out-of-sample model's most likely class.

A model without epochs or iterations (logistic regression) records no margins; the detector then ranks by the one-pass alternative, the
out-of-sample normalized margin (the given label's probability minus the best other's), and its flags are
cleanlab's ``find_label_issues(filter_by="low_normalized_margin")``. The manifest says which ran.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .confident_learning import ConfidentLearning, Detection
from .context import DetectContext
from .streaming_cl import whole

log = logging.getLogger(__name__)


def lowest_per_class(score: np.ndarray, labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: within each given class ``c``, the ``counts[c]`` rows of lowest ``score`` (ties by row order)."""
    flags = np.zeros(len(labels), bool)
    for c, n in enumerate(counts):
        rows = np.flatnonzero(labels == c)
        flags[rows[np.argsort(score[rows], kind="stable")[: int(n)]]] = True
    return flags


@dataclass
class Margin:
    """The detector described above; ``filter_by``: confident learning's filter, whose per-class counts the AUM flags follow."""

    filter_by: str = "prune_by_noise_rate"
    name: str = "margin"
    needs: ClassVar[tuple[str, ...]] = ("pred_probs",)

    def __post_init__(self) -> None:
        ConfidentLearning(filter_by=self.filter_by)  # refuses an unknown filter_by

    def detect_context(self, ctx: DetectContext) -> Detection:
        probs, labels = whole(ctx.pred_probs), ctx.labels
        if ctx.training_margins is None:
            log.info(
                "margin: the model recorded no training margins (it trains in neither epochs nor iterations); ranking by the one-pass out-of-sample margin"
            )
            one_pass = ConfidentLearning(filter_by="low_normalized_margin", score_method="normalized_margin", name=self.name).detect(labels, probs)
            one_pass.extra["margin"] = "one-pass normalized margin of the out-of-sample pred_probs"
            return one_pass
        cl = ConfidentLearning(filter_by=self.filter_by).detect(labels, probs)
        counts = np.bincount(labels[cl.is_issue], minlength=ctx.n_classes)
        aum = np.asarray(ctx.training_margins, dtype=np.float64)
        flags = lowest_per_class(aum, labels, counts)
        score = 1.0 / (1.0 + np.exp(-aum))
        log.info(
            "margin (AUM over the training epochs): %d rows flagged, %d of them also by confident learning", int(flags.sum()), int((flags & cl.is_issue).sum())
        )
        extra = {k: v for k, v in cl.extra.items() if k in ("num_label_issues_estimate", "class_error_rate", "joint", "noise_matrix")}
        return Detection(self.name, score, flags, probs.argmax(axis=1), {**extra, "margin": "area under the margin over training (epochs or iterations)"})
