"""Kinds of issue (``issue_kind``): what to do with each row. The one place kinds are decided: at the
audit (``audit_kinds``), at re-labeling (``classify``) and from a reviewer's answer (``review_kind``).

For a flagged row with given label ``y``, let ``s`` be the most probable *other* class and ``p`` the
evidence (out-of-sample pred_probs, or the judges' proposals blended in, see ``evidence``):

- ``out_of_distribution``: the judges say no class fits (only judges can say this: a softmax model
  spreads all its mass over the known classes, and on the shared MNIST/CIFAR-10 data the rows people
  called "neither" get the same confident probabilities as the correctable ones);
- ``wrong_label``: ``p[s] >= fix_confidence``; the correction is ``s``;
- ``multi_label``: ``p[y] >= both_min`` and ``p[s] >= both_min`` and the two hold at least
  ``pair_mass`` together: both labels fit, nothing else does (keep both in the label set). With two
  classes the pair always holds all the mass, so the rule says nothing there: a two-class row is
  ``multi_label`` only when the judges say so (below), else ``ambiguous``;
- ``ambiguous``: anything else (the evidence is spread out): send it to a person.

Rows that are not flagged are ``ok``. With judges, a row whose multiple-choice judges mostly propose a
class other than ``s`` is ``ambiguous`` (model and judges disagree on the fix), and one whose yes/no
judges mostly accept the given label while the choosers propose ``s`` is ``multi_label``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from .validation import check_fraction


@dataclass(frozen=True)
class KindRule:
    """Thresholds of the rule above (defaults measured in ``bench/issue_kinds.py``)."""

    fix_confidence: float = 0.9
    both_min: float = 0.25
    pair_mass: float = 0.9

    def __post_init__(self) -> None:
        check_fraction(self.fix_confidence, "fix_confidence")
        check_fraction(self.both_min, "both_min")
        check_fraction(self.pair_mass, "pair_mass")

    def describe(self) -> dict:
        return asdict(self)


@dataclass
class Kinds:
    """Per row: ``kind`` (``labelq.schema.ISSUE_KINDS``), ``correction`` (-1 = none), ``alternative`` (``s``)."""

    kind: np.ndarray
    correction: np.ndarray
    alternative: np.ndarray

    def counts(self) -> dict[str, int]:
        names, n = np.unique(self.kind, return_counts=True)
        return {str(k): int(c) for k, c in zip(names, n)}


def noise_aware(probs: np.ndarray, labels: np.ndarray, noise_matrix: np.ndarray, smoothing: float = 1e-3) -> np.ndarray:
    """P(true class | x, given label) ∝ p(class | x) * P(given label | true class): the given label as evidence.

    ``noise_matrix[i, j]`` = P(given i | true j) (confident learning's estimate), smoothed by
    ``smoothing`` so no class is ruled out. Labels that are usually right pull the posterior back
    towards the given label: a model 99% sure of another class on a dataset with 1% noise ends near
    50/50, i.e. ``ambiguous`` rather than ``wrong_label``.
    """
    q = np.asarray(noise_matrix, dtype=np.float64) + smoothing
    q = q / q.sum(axis=0, keepdims=True)
    post = np.asarray(probs, dtype=np.float64) * q[labels, :]
    return post / post.sum(axis=1, keepdims=True)


def best_other(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(N,)``: the most probable class other than the given one."""
    masked = np.array(probs, dtype=np.float64, copy=True)
    masked[np.arange(len(labels)), labels] = -np.inf
    return masked.argmax(axis=1)


AUDIT_KINDS = ("ok", "wrong_label", "out_of_distribution")


def audit_kinds(flagged: np.ndarray, no_class: np.ndarray | None = None) -> pa.Array:
    """The audit's kinds ``(N,)`` as an Arrow string array: ``ok``, ``wrong_label`` (flagged), or
    ``out_of_distribution`` (flagged, and the judges say no class fits). Built by ``take`` from the three
    names (at 10M rows a numpy string array would take 440 MB, a Python list 80 MB more)."""
    code = flagged.astype(np.int8)
    if no_class is not None:
        code[flagged & no_class] = 2
    return pa.array(AUDIT_KINDS, pa.string()).take(pa.array(code))


def review_kind(chosen: list[int], given: int) -> str:
    """The kind a reviewer's answer gives a row: no class (``out_of_distribution``), the given label alone
    (``ok``), one other class (``wrong_label``), or several (``multi_label``)."""
    if not chosen:
        return "out_of_distribution"
    if list(chosen) == [given]:
        return "ok"
    return "wrong_label" if len(chosen) == 1 else "multi_label"


def classify(
    probs: np.ndarray,
    labels: np.ndarray,
    flagged: np.ndarray,
    rule: KindRule | None = None,
    no_class: np.ndarray | None = None,
    judge_choice: np.ndarray | None = None,
    judge_accepts: np.ndarray | None = None,
) -> Kinds:
    """Apply the rule. ``probs`` ``(N, K)``; ``labels``, ``flagged`` ``(N,)``.

    Judge evidence, all optional and ``(N,)``: ``no_class`` (most choosers said none fits),
    ``judge_choice`` (the choosers' majority class, -1 none / -2 no chooser answered), ``judge_accepts``
    (most yes/no judges accept the given label; False where none answered).
    """
    rule = rule or KindRule()
    n = len(labels)
    rows = np.arange(n)
    s = best_other(probs, labels)
    p_y, p_s = probs[rows, labels], probs[rows, s]
    kind = np.full(n, "ambiguous", dtype=object)
    fix = p_s >= rule.fix_confidence
    both = (p_y >= rule.both_min) & (p_s >= rule.both_min) & (p_y + p_s >= rule.pair_mass) & (probs.shape[1] > 2)
    kind[both] = "multi_label"
    kind[fix] = "wrong_label"
    if judge_choice is not None:
        answered = judge_choice >= 0
        disagree = answered & (judge_choice != s) & (judge_choice != labels)
        kind[disagree & (kind == "wrong_label")] = "ambiguous"
        if judge_accepts is not None:
            kind[answered & (judge_choice == s) & judge_accepts] = "multi_label"
    if no_class is not None:
        kind[no_class] = "out_of_distribution"
    kind[~flagged] = "ok"
    correction = np.where(kind == "wrong_label", s, -1).astype(np.int64)
    return Kinds(kind, correction, s.astype(np.int64))
