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
- no rule passes: nothing is corrected. The rule that came closest is kept (its threshold, sample rows,
  rows right and bound), with how many further random reviews would let it pass if its observed
  precision held, whether the unsampled flagged rows are enough for that, or that more reviews are
  unlikely to help when no rule's observed precision is above ``target``.

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
    """The chosen rule and its guarantee (``threshold`` None: no rule reached the target).

    ``n_passing``, ``n_right``, ``precision_lower_bound`` and ``observed_precision`` describe the chosen rule
    (0 and None when there is none). When none passes, the ``best_*`` fields describe the rule that came
    closest (``closest_rule``), ``needed_rows`` is the fewest sample rows, all right, that could prove the
    target, ``unsampled`` how many eligible rows were never drawn, and ``reviews_needed`` about how many
    more random reviews would let the closest rule pass if its observed precision held (None when that
    precision is not above the target); ``more_reviews`` is the same when the unsampled rows suffice.
    """

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
    more_reviews: int | None  # None: none needed (a rule passed), or more than the unsampled rows, or unlikely to help
    grid: tuple[float, ...] = GRID
    needed_rows: int | None = None
    best_threshold: float | None = None
    best_rows: int = 0
    best_right: int = 0
    best_bound: float | None = None
    unsampled: int | None = None
    reviews_needed: int | None = None
    unit: str = "rows"  # what the rule corrects, for people: rows (one class a row) or tag flips

    def describe(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """What a person can act on: the rule and its guarantee, or the closest rule and what would settle it."""
        head = f"target precision {self.target_precision:g} at confidence {self.confidence:g}, from {self.n_sample} random reviews"
        if self.threshold is not None:
            return (
                f"{head}: correcting flagged {self.unit} whose suggestion has {self.score} >= {self.threshold:g} "
                f"({self.n_right}/{self.n_passing} sample {self.unit} right, precision >= {self.precision_lower_bound:.3f})"
            )
        if self.best_threshold is None:
            return f"{head}: no rule reaches it, nothing is corrected (no reviewed sample row has a suggestion at any threshold tried)"
        closest = (
            f"{head}: no rule reaches it, nothing is corrected. The closest rule, {self.score} >= {self.best_threshold:g}, "
            f"would correct {self.best_rows} sample {self.unit}, {self.best_right} of them right ({self.best_right / self.best_rows:.3f}; "
            f"precision >= {self.best_bound:.3f} at confidence {self.confidence:g}); proving {self.target_precision:g} takes "
            f"at least {self.needed_rows} sample {self.unit} at or above the threshold, all right. "
        )
        if self.reviews_needed is None:
            return closest + (
                f"No rule is right more than {self.target_precision:g} of the time in the sample, so more reviews are unlikely to help: "
                "lower --target-precision, or review the flagged rows (labelq review serve)"
            )
        if self.more_reviews is not None:
            return closest + (
                f"About {self.more_reviews} more random reviews (of {self.unsampled} unsampled flagged {self.unit}) would settle it if its precision holds: "
                f"draw them with labelq review export NAME --sample {self.more_reviews}"
            )
        return closest + (
            f"That takes about {self.reviews_needed} more random reviews, but only {self.unsampled} flagged {self.unit} are unsampled: "
            "too few to prove it by sampling; review them all instead (labelq review serve)"
        )


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
    unit: str = "rows",
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
        return FixRule(target, confidence, score, len(scores), drawn, t, n, k, bound, k / n, None, grid, unit=unit)
    left = max(len(population) - drawn, 0)
    best, needed = closest_rule(scores, right, target, alpha, grid)
    if best is None:
        return FixRule(target, confidence, score, len(scores), drawn, None, 0, 0, None, None, None, grid, need, unsampled=left, unit=unit)
    t, n, k, bound = best
    reviews = needed if needed is not None and needed <= left else None
    return FixRule(target, confidence, score, len(scores), drawn, None, 0, 0, None, None, reviews, grid, need, t, n, k, bound, left, needed, unit)


def closest_rule(scores: np.ndarray, right: np.ndarray, target: float, alpha: float, grid: tuple = GRID) -> tuple[tuple | None, int | None]:
    """The rule of ``grid`` that came closest to passing, as ``(threshold, sample rows, right, lower bound)``,
    and about how many more random reviews would let it pass (None: its observed precision is not above
    ``target``, so more reviews are unlikely to help). Among rules right more than ``target`` of the time in
    the sample: the one needing the fewest more reviews; else the one with the highest lower bound."""
    tried = []
    for t in grid:
        sel = scores >= t
        n, k = int(sel.sum()), int(right[sel].sum())
        if n:
            tried.append((t, n, k, lower_bound(k, n, alpha)))
    if not tried:
        return None, None
    promising = [(_more_reviews(n, k, len(scores), target, alpha), -bound, (t, n, k, bound)) for t, n, k, bound in tried if k / n > target]
    if promising:
        needed, _, rule = min(promising, key=lambda p: (p[0], p[1], -p[2][0]))  # ties: the strictest rule
        return rule, needed
    return max(tried, key=lambda r: (r[3], r[1], r[0])), None


def _more_reviews(n: int, k: int, n_sample: int, target: float, alpha: float) -> int:
    """Further random reviews after which a rule with ``k`` of ``n`` sample rows right would pass, if its
    observed precision and its share of the sample held (and the rules before it in the sequence passed too)."""
    share, p = n / n_sample, k / n
    total = n_sample
    while total < 10**9:  # p > target: the bound reaches it as the sample grows
        total = int(total * 1.1) + 1
        m = max(1, round(total * share))
        if lower_bound(int(np.floor(p * m)), m, alpha) >= target:
            break
    return total - n_sample


def check_target(target: float | None, confidence: float) -> None:
    if target is not None:
        check_fraction(target, "target precision")
        if not 0 < target < 1:
            raise InputError(f"target precision must be between 0 and 1, got {target}", "pass --target-precision 0.9 (for example)")
    check_fraction(confidence, "confidence")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be between 0 and 1, got {confidence}", "pass --confidence 0.9 (for example)")
