"""Corrections with a guaranteed precision, from people's reviews of a random sample.

No threshold on pred_probs alone makes automatic corrections trustworthy: on the crowd-verified
MNIST and CIFAR-10 test sets, corrections to the model's suggestion are 7-33% right. What a person
checks on a *uniformly random sample* of the flagged rows, though, says how often a correction rule
is right on all of them. This module picks the most permissive rule that the sample shows to be right
at least ``target`` of the time, with probability at least ``confidence``:

- the candidate correction of a flagged row is the most probable class other than its given label,
  and its ``score`` is that class's probability (pred_probs, or the noise-aware posterior);
- a rule "correct the flagged rows whose score is at least t" is tried for each t of a grid fixed in
  advance (``GRID``), never chosen from the reviewers' answers;
- Learn-then-Test (Angelopoulos et al. 2021) with fixed-sequence testing: for each t, strictest first,
  the null hypothesis "this rule's precision is below ``target``" is tested with the exact binomial
  (Clopper-Pearson) bound on the sample rows the rule would correct, at level ``1 - confidence``; the
  first rule that fails ends the sequence. The sequence starts at the strictest t that the sample can
  test at all: where the expected number of sample rows above t (known before anyone reviews, from the
  scores of every eligible row and the sample size) reaches the smallest count that could pass
  (``min_rows``). The order depends only on scores, not on answers, so with probability at least
  ``confidence`` no rule with precision below ``target`` passes: the last rule that passes has
  precision at least ``target`` over the eligible flagged rows;
- no rule passes: nothing is corrected. ``more_reviews`` says how many further random reviews would
  let the best-looking rule pass if its observed precision held, or that more reviews are unlikely to
  help when no rule's observed precision is above ``target``.

A correction counts as right when the reviewer's answer is exactly the candidate class. Rows in the
sample that the reviewer left unanswered are left out (the note says how many: if reviewers skip the
hard rows, the guarantee is optimistic).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import InputError
from .validation import check_fraction

GRID = (0.999, 0.995, 0.99, 0.98, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5)  # thresholds on the candidate's score, strictest first


@dataclass(frozen=True)
class FixRule:
    """The chosen rule and its guarantee (``threshold`` None: no rule reached the target)."""

    target_precision: float
    confidence: float
    score: str  # what the threshold applies to: "pred_probs" or "noise_aware"
    n_sample: int  # answered calibration reviews
    n_drawn: int  # rows drawn into calibration samples (answered or not)
    threshold: float | None
    n_passing: int  # sample rows the rule corrects
    n_right: int  # of those, the ones the reviewer confirmed
    precision_lower_bound: float | None  # the Clopper-Pearson bound the rule reached, at level 1 - confidence
    observed_precision: float | None
    more_reviews: int | None  # None: none needed (a rule passed) or more reviews are unlikely to help
    grid: tuple[float, ...] = GRID

    def describe(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """One line for people: the rule and its guarantee, or why there is none."""
        head = f"target precision {self.target_precision:g} at confidence {self.confidence:g}, from {self.n_sample} random reviews"
        if self.threshold is not None:
            return (
                f"{head}: correcting flagged rows whose suggestion has {self.score} >= {self.threshold:g} "
                f"({self.n_right}/{self.n_passing} right in the sample, precision >= {self.precision_lower_bound:.3f})"
            )
        if self.more_reviews is not None:
            return f"{head}: no rule reaches it, nothing is corrected; about {self.more_reviews} more random reviews would settle it if the best rule's precision ({self.observed_precision:.3f}) holds"
        if self.observed_precision is not None and self.observed_precision > self.target_precision:
            return (
                f"{head}: no rule reaches it, nothing is corrected; the best rule looks good ({self.observed_precision:.3f} right), "
                "but too few flagged rows are left to prove it by sampling: review them (labelq review serve)"
            )
        best = "" if self.observed_precision is None else f" (the best rule was {self.observed_precision:.3f} right)"
        return f"{head}: no rule reaches it, nothing is corrected, and more reviews are unlikely to help{best}"


def lower_bound(k: int, n: int, alpha: float) -> float:
    """Clopper-Pearson one-sided lower bound of a binomial proportion ``k/n`` at level ``alpha``."""
    from scipy.special import betaincinv  # = scipy.stats.beta.ppf; scipy.stats takes ~1.5 s to import

    return 0.0 if k == 0 or n == 0 else float(betaincinv(k, n - k + 1, alpha))


def candidates(evidence: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's candidate correction (the most probable class other than its label) and its probability."""
    masked = np.array(evidence, dtype=np.float64, copy=True)
    masked[np.arange(len(labels)), labels] = -np.inf
    cand = masked.argmax(1)
    return cand, evidence[np.arange(len(labels)), cand]


def min_rows(target: float, alpha: float) -> int:
    """The fewest sample rows, all right, whose lower bound reaches ``target`` at level ``alpha``."""
    return int(np.ceil(np.log(alpha) / np.log(target)))


def choose_rule(
    scores: np.ndarray,
    right: np.ndarray,
    population: np.ndarray,
    target: float,
    confidence: float,
    score: str = "pred_probs",
    n_drawn: int | None = None,
    grid: tuple = GRID,
) -> FixRule:
    """The most permissive threshold of ``grid`` that passes fixed-sequence testing (module docstring).

    ``scores``, ``right``: one entry per answered calibration review; ``population``: the scores of every
    row the rule would apply to (the eligible flagged rows, the sample included); ``n_drawn``: rows drawn
    into the sample, answered or not (it sets the expected counts that order the tests).
    """
    check_target(target, confidence)
    scores, right, population = np.asarray(scores, dtype=np.float64), np.asarray(right, dtype=bool), np.asarray(population, dtype=np.float64)
    alpha = 1 - confidence
    drawn = len(scores) if n_drawn is None else n_drawn
    need = min_rows(target, alpha)
    order = [t for t in grid if drawn * (population >= t).mean() >= need] if len(population) else []
    passed = None
    for t in order:
        sel = scores >= t
        n, k = int(sel.sum()), int(right[sel].sum())
        bound = lower_bound(k, n, alpha)
        if bound < target:
            break
        passed = (t, n, k, bound)
    if passed:
        t, n, k, bound = passed
        return FixRule(target, confidence, score, len(scores), drawn, t, n, k, bound, k / n, None, grid)
    best = None  # the rule that looks best on the sample: the highest observed precision, then the most rows
    for t in grid:
        sel = scores >= t
        n, k = int(sel.sum()), int(right[sel].sum())
        if n and (best is None or (k / n, n) > (best[2] / best[1], best[1])):
            best = (t, n, k)
    observed = None if best is None else best[2] / best[1]
    more = _more_reviews(best, len(scores), target, alpha, len(population) - drawn)
    return FixRule(target, confidence, score, len(scores), drawn, None, 0, 0, None, observed, more, grid)


def _more_reviews(best: tuple | None, n_sample: int, target: float, alpha: float, left: int) -> int | None:
    """Further random reviews after which the best rule would pass, if its observed precision and its
    share of the sample held (and the rules before it in the sequence passed too); None when its observed
    precision is not above the target, or when more than the ``left`` unsampled rows would be needed."""
    if best is None or best[2] / best[1] <= target:
        return None
    t, n, k = best
    share, p = n / n_sample, k / n
    total = n_sample
    while total < 1_000_000:
        total = int(total * 1.1) + 1
        m = max(1, round(total * share))
        if lower_bound(int(np.floor(p * m)), m, alpha) >= target:
            return total - n_sample if total - n_sample <= left else None
    return None


def check_target(target: float | None, confidence: float) -> None:
    if target is not None:
        check_fraction(target, "target precision")
        if not 0 < target < 1:
            raise InputError(f"target precision must be between 0 and 1, got {target}", "pass --target-precision 0.9 (for example)")
    check_fraction(confidence, "confidence")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be between 0 and 1, got {confidence}", "pass --confidence 0.9 (for example)")
