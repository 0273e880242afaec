"""What a detector may see: a ``DetectContext`` of the labels and, where the audit has them, the pred_probs
and the rows' feature space. A detector declares what it ``needs`` (by default ``("pred_probs",)``);
``run_detector`` refuses one whose needs are missing, with what to do, and gives the rest what they read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from .streaming_cl import whole

NEEDS = ("pred_probs", "features")
FIX = {
    "pred_probs": "train a model (leave --pred-probs out) or pass your own --pred-probs",
    "features": "give the rows' inputs (a text, image or feature column) and keep them in the audit",
}


@dataclass
class DetectContext:
    """``labels`` ``(N,)`` class indices over ``n_classes``; ``pred_probs`` an array or pred_probs read by chunks
    (None: none); ``features`` builds the ``(N, D)`` feature space on first use (None: no inputs);
    ``more_probs`` other models' out-of-sample ``(N, K)`` pred_probs, by name (``ensemble_cl`` averages them in);
    ``training_margins`` each row's area under the margin ``(N,)`` from the models that trained on it
    (``labelq.predict.training_margins``; None where the model trains in neither epochs nor iterations), which ``margin`` ranks by."""

    labels: np.ndarray
    n_classes: int
    pred_probs: Any = None
    features: Callable[[], np.ndarray] | None = None
    more_probs: dict[str, np.ndarray] = field(default_factory=dict)
    training_margins: np.ndarray | None = None
    _space: np.ndarray | None = field(default=None, repr=False)
    _neighbours: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def has(self, need: str) -> bool:
        return {"pred_probs": self.pred_probs is not None, "features": self.features is not None}[need]

    def neighbours(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each row's ``k`` nearest other rows in the feature space, ``(distances, indices)`` (``neighbors.knn``),
        found once: the labels may change (planted noise), the neighbours do not."""
        if k not in self._neighbours:
            from .neighbors import knn

            self._neighbours[k] = knn(np.asarray(self.feature_space(), dtype=np.float32), k)
        return self._neighbours[k]

    def with_labels(self, labels: np.ndarray) -> DetectContext:
        """The same context with other labels (its feature space and neighbours shared; no training margins: they
        belong to the labels the models were trained on)."""
        return DetectContext(labels, self.n_classes, self.pred_probs, self.features, self.more_probs, None, self._space, self._neighbours)

    def feature_space(self) -> np.ndarray:
        if self.features is None:
            raise InputError("no feature space: the rows' inputs were not read", FIX["features"])
        if self._space is None:
            self._space = np.asarray(self.features())
        return self._space


def run_detector(impl: Any, ctx: DetectContext) -> Any:
    """``impl``'s ``Detection`` on ``ctx``: ``detect_context(ctx)`` for a detector that reads the context, else
    ``detect(labels, pred_probs)`` (the whole array unless it declares ``reads_chunks = True``)."""
    name = getattr(impl, "name", type(impl).__name__)
    missing = [need for need in getattr(impl, "needs", ("pred_probs",)) if not ctx.has(need)]
    if missing:
        raise InputError(f"detector {name!r} needs {', '.join(missing)}, which this audit does not have", FIX[missing[0]])
    if hasattr(impl, "detect_context"):
        return impl.detect_context(ctx)
    probs = ctx.pred_probs if getattr(impl, "reads_chunks", False) else whole(ctx.pred_probs)
    return impl.detect(ctx.labels, probs)
