"""What a detector may see: a ``DetectContext`` of the labels and, where the audit has them, the pred_probs,
the rows' feature space and the rows people reviewed in a detector sample (``ReviewedSample``). A detector declares what it ``needs`` (by default ``("pred_probs",)``);
``run_detector`` refuses one whose needs are missing, with what to do, and gives the rest what they read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from .streaming_cl import whole

NEEDS = ("pred_probs", "features", "judges")
FIX = {
    "pred_probs": "train a model (leave --pred-probs out) or pass your own --pred-probs",
    "features": "give the rows' inputs (a text, image or feature column) and keep them in the audit",
    "judges": "add LLM judges: --judges qwen (or a judges file); the judges then see every row",
}


@dataclass
class ReviewedSample:
    """Rows people reviewed in a stratified sample over all rows (``labelq.detector_samples``): ``rows`` their
    positions, ``wrong`` whether the given label was found wrong, ``weight`` how many rows of the audit each
    stands for (its stratum's rows over the answered ones), ``samples`` the samples' ids. Weighted sums over
    them estimate sums over every row (Horvitz-Thompson)."""

    rows: np.ndarray
    wrong: np.ndarray
    weight: np.ndarray
    samples: list[str]

    def estimates(self, flags: np.ndarray) -> dict[str, float]:
        """A detector's estimated precision, recall and F1 on real errors, from its ``(N,)`` flags; the number of
        errors among all rows is estimated, the number flagged is known."""
        errors = float(self.weight @ self.wrong)
        hits = float(self.weight @ (self.wrong & flags[self.rows]))
        n_flagged = int(flags.sum())
        return {
            "precision": round(hits / n_flagged, 4) if n_flagged else 0.0,
            "recall": round(hits / errors, 4) if errors else 0.0,
            "f1": round(2 * hits / (n_flagged + errors), 4) if n_flagged + errors else 0.0,
        }

    def best_cut(self, score: np.ndarray) -> tuple[int, float]:
        """How many rows of lowest ``score`` to flag for the best estimated F1 (the cuts tried: just past each
        reviewed row, in score order), and that F1."""
        rank = np.empty(len(score), dtype=np.int64)
        rank[np.argsort(score, kind="stable")] = np.arange(len(score))
        at = rank[self.rows]
        errors = float(self.weight @ self.wrong)
        order = np.argsort(at, kind="stable")
        hits = np.cumsum((self.weight * self.wrong)[order])
        cuts = at[order] + 1
        f1 = 2 * hits / (cuts + errors)
        best = int(np.argmax(f1))
        return int(cuts[best]), round(float(f1[best]), 4)


@dataclass
class JudgeVerdicts:
    """The LLM judges' answers as a detector reads them: ``rows`` the judged rows' positions, ``p_wrong`` their
    combined probability that the label is wrong (in that order), ``proposal`` ``(N,)`` the judges' majority
    proposal (-2: none, -1: no class fits), ``info`` how they were combined (the manifest's judges section)."""

    rows: np.ndarray
    p_wrong: np.ndarray
    proposal: np.ndarray
    info: dict


@dataclass
class DetectContext:
    """``labels`` ``(N,)`` class indices over ``n_classes``; ``pred_probs`` an array or pred_probs read by chunks
    (None: none); ``features`` builds the ``(N, D)`` feature space on first use (None: no inputs);
    ``more_probs`` other models' out-of-sample ``(N, K)`` pred_probs, by name (``ensemble_cl`` averages them in);
    ``training_margins`` each row's area under the margin ``(N,)`` from the models that trained on it
    (``labelq.predict.training_margins``; None where the model trains in neither epochs nor iterations), which ``margin`` ranks by;
    ``reviewed`` the rows people reviewed in a detector sample, which ``ensemble`` scores its candidates on;
    ``judges`` the LLM judges' verdicts, which ``judges`` flags by."""

    labels: np.ndarray
    n_classes: int
    pred_probs: Any = None
    features: Callable[[], np.ndarray] | None = None
    more_probs: dict[str, np.ndarray] = field(default_factory=dict)
    training_margins: np.ndarray | None = None
    reviewed: ReviewedSample | None = None
    judges: JudgeVerdicts | None = None
    _space: np.ndarray | None = field(default=None, repr=False)
    _neighbours: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def has(self, need: str) -> bool:
        return {"pred_probs": self.pred_probs is not None, "features": self.features is not None, "judges": self.judges is not None}[need]

    def neighbours(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each row's ``k`` nearest other rows in the feature space, ``(distances, indices)`` (``neighbors.knn``),
        found once: the labels may change (planted noise), the neighbours do not."""
        if k not in self._neighbours:
            from .neighbors import knn

            self._neighbours[k] = knn(np.asarray(self.feature_space(), dtype=np.float32), k)
        return self._neighbours[k]

    def with_labels(self, labels: np.ndarray) -> DetectContext:
        """The same context with other labels (its feature space and neighbours shared; no training margins and no
        reviews: they belong to the labels the models were trained on and the people saw)."""
        return DetectContext(labels, self.n_classes, self.pred_probs, self.features, self.more_probs, None, None, None, self._space, self._neighbours)

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
