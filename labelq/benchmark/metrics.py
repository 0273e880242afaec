"""Model accuracy on original vs corrected test labels, with bootstrap intervals, rankings and prevalence.

As in "Pervasive Label Errors in Test Sets Destabilize Machine Learning Benchmarks" (Northcutt,
Athalye, Mueller 2021):

- ``accuracy_table``: per model, accuracy on the original labels, on the corrected labels, on the
  label sets (right if the prediction is in the set, "ReaL"), and on the two subsets "originally
  mislabeled" (the corrected label differs from the given one) and "correctly labeled"; every figure
  with a 95% percentile bootstrap interval (rows resampled with replacement, the same resamples for
  every model and figure, so intervals are comparable).
- ``rankings``: each model's rank under each labeling and Kendall's tau between the rankings.
- ``prevalence``: if the test set held a share ``p`` of originally mislabeled rows (the paper removes
  correctly labeled rows at random to raise it), a model's expected accuracy on corrected labels is
  ``p * acc_mislabeled + (1 - p) * acc_correct``: a line in ``p``. Two models swap places where their
  lines cross; ``swap_points`` gives that prevalence for every pair that swaps within [0, 1].
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..labelkind import LabelKind, kind_named

LABELINGS = ("original", "corrected", "label_sets")


@dataclass
class CorrectedLabels:
    """The test set's labels: ``given`` and ``corrected`` as the ``kind`` of label holds them (one class a row:
    ``(N,)`` ints; tags: ``(N, K)`` bool tag matrices), ``sets`` ``(N, K)`` bool label sets or None."""

    given: np.ndarray
    corrected: np.ndarray
    sets: np.ndarray | None = None
    kind: LabelKind = field(default_factory=lambda: kind_named("single"))

    def __post_init__(self) -> None:
        if self.given.shape != self.corrected.shape:
            raise InputError(f"given and corrected labels differ in length ({len(self.given)} vs {len(self.corrected)})")
        if self.sets is not None and len(self.sets) != len(self.given):
            raise InputError(f"{len(self.sets)} label sets for {len(self.given)} rows")

    @property
    def mislabeled(self) -> np.ndarray:
        return self.kind.differ(self.given, self.corrected)


TAG_METRICS = ("hamming", "f1")  # multi-label: per-row tag accuracy (1 - Hamming loss) and F1 of the predicted tags


def tag_scores(pred: np.ndarray, tags: np.ndarray) -> dict[str, np.ndarray]:
    """Per row of a multi-label test set: the share of tags predicted right (``hamming``, 1 - Hamming loss)
    and the F1 of the predicted tags against the true ones (``f1``; 1 when both are empty), scikit-learn's
    ``average="samples"`` when averaged over rows."""
    hits = (pred & tags).sum(axis=1)
    size = pred.sum(axis=1) + tags.sum(axis=1)
    return {"hamming": (pred == tags).mean(axis=1), "f1": np.where(size > 0, 2 * hits / np.maximum(size, 1), 1.0)}


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n)`` row indices drawn with replacement."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def accuracy_table(predictions: dict[str, np.ndarray], labels: CorrectedLabels, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """One row per model: accuracies (and 95% intervals) under each labeling and on the two subsets."""
    if not predictions:
        raise InputError("no model predictions", "pass predictions of at least one model")
    n = len(labels.given)
    boots = bootstrap_indices(n, n_boot, seed)
    mis = labels.mislabeled
    rows = []
    for model, pred in predictions.items():
        pred = np.asarray(pred)
        if pred.shape != labels.given.shape:
            raise InputError(f"model {model!r} has {pred.shape} predictions for {n} rows")
        right = labels.kind.scores(pred, labels)  # original, corrected, and what else the kind scores (label sets, tag accuracy, F1)
        row: dict = {"model": model}
        for name, r in right.items():
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = labels.kind.aggregate(name, r, boots)
        for name, mask in (("mislabeled_subset", mis), ("correct_subset", ~mis)):
            # on originally mislabeled rows the right answer is the corrected label; on the rest both agree
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = labels.kind.aggregate("corrected", right["corrected"], boots, mask)
        row["change"] = row["corrected"] - row["original"]
        rows.append(row)
    return rows


def rankings(table: list[dict], labelings: tuple[str, ...] = LABELINGS) -> tuple[dict[str, dict[str, int]], dict[str, float]]:
    """(rank of each model under each labeling, 1 = best; Kendall's tau between every two labelings)."""
    from scipy.stats import kendalltau

    present = [lab for lab in labelings if lab in table[0]]
    ranks: dict[str, dict[str, int]] = {}
    for lab in present:
        order = sorted(table, key=lambda r: (-r[lab], r["model"]))
        ranks[lab] = {r["model"]: i + 1 for i, r in enumerate(order)}
    taus = {}
    models = [r["model"] for r in table]
    for a, b in itertools.combinations(present, 2):
        if len(models) < 2:
            taus[f"{a} vs {b}"] = float("nan")
            continue
        tau = kendalltau([ranks[a][m] for m in models], [ranks[b][m] for m in models]).statistic
        taus[f"{a} vs {b}"] = float(tau) if tau == tau else 1.0  # constant ranks (all tied): identical orderings
    return ranks, taus


def prevalence_curve(table: list[dict], grid: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Expected accuracy on corrected labels per model as the share of originally mislabeled rows varies."""
    grid = np.linspace(0, 1, 101) if grid is None else grid
    out = {"prevalence": grid}
    for r in table:
        a_mis = 0.0 if np.isnan(r["mislabeled_subset"]) else r["mislabeled_subset"]
        out[r["model"]] = grid * a_mis + (1 - grid) * r["correct_subset"]
    return out


def swap_points(table: list[dict], observed: float) -> list[dict]:
    """Pairs of models whose order on corrected labels flips at some prevalence in [0, 1].

    ``observed``: the test set's own share of originally mislabeled rows; ``extra_needed`` is how many
    percentage points of extra mislabeled share make the pair swap (negative: it already has).
    """
    out = []
    for a, b in itertools.combinations(table, 2):
        if np.isnan(a["mislabeled_subset"]) or np.isnan(b["mislabeled_subset"]):
            continue
        da = a["correct_subset"] - b["correct_subset"]  # difference at prevalence 0
        db = a["mislabeled_subset"] - b["mislabeled_subset"]  # difference at prevalence 1
        if np.sign(da) * np.sign(db) >= 0:  # no strict change of order (a tie at an end is not a swap)
            continue
        p = da / (da - db)
        better_clean, better_noisy = (a["model"], b["model"]) if da > 0 else (b["model"], a["model"])
        out.append(
            {
                "better on correctly labeled rows": better_clean,
                "better on mislabeled rows": better_noisy,
                "swap at prevalence": float(p),
                "observed prevalence": observed,
                "extra_needed_points": 100 * float(p - observed),
            }
        )
    return sorted(out, key=lambda r: r["swap at prevalence"])
