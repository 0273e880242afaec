"""Label errors in a regression target (issue 31's detection core; not yet wired into ``labelq audit``).

From the given values ``y``, out-of-sample predictions ``pred`` and, optionally, the spread the model expects
for each row (``spread``: the typical size of its residual, from a model of the out-of-fold absolute
residuals or a quantile model), ``detect_regression`` gives a score, a flag and a suggested value a row:

- **score** (low = likely wrong, in [0, 1]):
  - ``spread`` (the default): ``exp(-z / median(z))`` with ``z = |y - pred| / spread``, the score cleanlab's
    ``CleanLearning.find_label_issues`` gives when handed the uncertainty; with no per-row spread it ranks
    as cleanlab's ``residual`` score does;
  - ``outre`` and ``residual``: cleanlab's ``regression.rank.get_label_quality_scores``, called as is (the
    references). ``outre`` ranks as well as ``residual`` in ``bench/regression.py`` but takes 6 s and 430 MiB
    on 7,506 rows (a k-NN over half the rows), ``residual`` none.
- **flags**, from a threshold the data chooses: the standardized residuals ``z`` (``spread`` per row, or
  the residuals' robust scale, 1.4826 x their median absolute deviation) are modelled as a mixture of a
  half-normal (the rows the model explains, its scale fitted) and a uniform over ``[0, max z]`` (values
  unrelated to the inputs), fitted by EM; a row is flagged where the uniform is the likelier source.
  The share of flagged rows follows the data, as confident learning's count does for classes, with no
  refitting (cleanlab's ``CleanLearning`` retrains its model for each candidate share).
- **suggested value**: the prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

METHODS = ("outre", "residual", "spread")
MAD_SCALE = 1.4826  # a normal's standard deviation over its median absolute deviation


@dataclass
class RegressionIssues:
    """Per row: ``score`` (low = likely wrong), ``is_issue``, ``suggested`` (the prediction), ``z`` (the residual over
    the spread) and ``p_wrong`` (the mixture's probability that the value is unrelated to the inputs); ``noise_share``
    the mixture's estimate of the share of such values."""

    score: np.ndarray
    is_issue: np.ndarray
    suggested: np.ndarray
    z: np.ndarray
    p_wrong: np.ndarray
    noise_share: float


def robust_scale(residual: np.ndarray) -> float:
    """The residuals' spread, robust to the wrong values among them: 1.4826 x the median absolute deviation."""
    r = np.asarray(residual, dtype=np.float64)
    mad = float(np.median(np.abs(r - np.median(r))))
    return MAD_SCALE * mad if mad > 0 else float(np.std(r)) or 1.0


def standardized(y: np.ndarray, pred: np.ndarray, spread: np.ndarray | float | None = None) -> np.ndarray:
    """``|y - pred| / spread`` (spread: per row, one number, or the residuals' robust scale)."""
    residual = np.asarray(pred, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    scale = robust_scale(residual) if spread is None else np.asarray(spread, dtype=np.float64)
    if np.any(np.asarray(scale) <= 0):
        raise InputError("the spread must be positive in every row", "give each row the typical size of its residual, or leave spread out")
    return np.abs(residual) / scale


def mixture(z: np.ndarray, iterations: int = 200, tol: float = 1e-8) -> tuple[np.ndarray, float, float]:
    """EM for ``z >= 0`` as a half-normal (scale ``sigma``) plus a uniform on ``[0, max z]`` (weight ``share``):
    ``(P(uniform | z) per row, share, sigma)``."""
    z = np.asarray(z, dtype=np.float64)
    top = float(z.max()) if len(z) else 1.0
    if top <= 0:
        return np.zeros(len(z)), 0.0, 1.0
    sigma, share = float(np.sqrt(np.mean(np.minimum(z, np.quantile(z, 0.9)) ** 2))) or 1.0, 0.05
    for _ in range(iterations):
        clean = (1 - share) * np.sqrt(2 / np.pi) / sigma * np.exp(-0.5 * (z / sigma) ** 2)
        noise = share / top
        post = noise / (clean + noise)
        new_share = float(np.clip(post.mean(), 1e-6, 0.5))
        new_sigma = float(np.sqrt(np.sum((1 - post) * z**2) / max(np.sum(1 - post), 1e-12))) or sigma
        done = abs(new_share - share) < tol and abs(new_sigma - sigma) < tol * sigma
        share, sigma = new_share, new_sigma
        if done:
            break
    clean = (1 - share) * np.sqrt(2 / np.pi) / sigma * np.exp(-0.5 * (z / sigma) ** 2)
    return share / top / (clean + share / top), share, sigma


def detect_regression(y: np.ndarray, pred: np.ndarray, spread: np.ndarray | float | None = None, method: str = "spread") -> RegressionIssues:
    """Scores, flags and suggested values (module docstring)."""
    from cleanlab.regression.rank import get_label_quality_scores

    if method not in METHODS:
        raise InputError(f"unknown regression score {method!r}", f"use one of {list(METHODS)}")
    y, pred = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if y.shape != pred.shape or y.ndim != 1:
        raise InputError(f"the values and predictions must be one a row, got shapes {y.shape} and {pred.shape}", "give one prediction a row")
    if not (np.isfinite(y).all() and np.isfinite(pred).all()):
        raise InputError("the values or predictions hold NaN or infinity", "drop or fill those rows")
    z = standardized(y, pred, spread)
    if method == "spread":
        score = np.exp(-z / max(float(np.median(z)), 1e-12))
    else:
        score = get_label_quality_scores(y, pred, method=method)
    p_wrong, share, _ = mixture(z)
    return RegressionIssues(score, p_wrong > 0.5, pred, z, p_wrong, share)
