"""Conformal label sets keep their coverage promise; soft labels and ReaL accuracy are well-formed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelq.errors import InputError
from labelq.relabel import ConformalLabelSets, real_accuracy, soft_labels
from labelq.relabel.label_sets import coverage


def calibrated(n: int, k: int, seed: int):
    """pred_probs and labels drawn from them: exchangeable rows, as conformal prediction assumes."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(k, 0.3), size=n)
    y = np.array([rng.choice(k, p=row) for row in p])
    return p, y


@pytest.mark.parametrize("score", ["lac", "aps"])
@pytest.mark.parametrize("alpha", [0.1, 0.05])
def test_marginal_coverage_is_at_least_the_target(score, alpha):
    covs = []
    for seed in range(30):
        p, y = calibrated(1000, 5, seed)
        sets = ConformalLabelSets(alpha, score).fit(p[:500], y[:500]).predict(p[500:])
        covs.append(coverage(sets, y[500:]))
    assert np.mean(covs) >= 1 - alpha - 0.005  # the guarantee is on average over calibration draws
    assert np.mean(covs) <= 1 - alpha + 0.03  # and not trivially (sets are not everything)


def test_class_conditional_coverage_holds_in_every_class():
    p, y = calibrated(6000, 4, 1)
    p[y == 3] = 0.7 * p[y == 3] + 0.3 / 4  # a hard class: the model is unsure of it
    model = ConformalLabelSets(0.1, class_conditional=True).fit(p[:3000], y[:3000])
    sets = model.predict(p[3000:])
    for c in range(4):
        rows = y[3000:] == c
        assert coverage(sets[rows], y[3000:][rows]) >= 0.9 - 0.03


def test_on_real_predictions(digits):
    from labelq.predict import cross_val_pred_probs, pred_probs_array

    p = pred_probs_array(cross_val_pred_probs(digits, model="logreg", n_folds=5, seed=0))
    y = digits["label"].to_numpy()
    rng = np.random.default_rng(0)
    covs, sizes = [], []
    for _ in range(20):
        perm = rng.permutation(len(y))
        cal, test = perm[:900], perm[900:]
        sets = ConformalLabelSets(0.05).fit(p[cal], y[cal]).predict(p[test])
        covs.append(coverage(sets, y[test]))
        sizes.append(sets.sum(1).mean())
    assert np.mean(covs) >= 0.95 - 0.01 and 1.0 <= np.mean(sizes) < 2.0
    assert real_accuracy(p[test].argmax(1), sets) >= (p[test].argmax(1) == y[test]).mean()


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 6), st.integers(0, 10_000), st.sampled_from(["lac", "aps"]))
def test_sets_are_never_empty_and_hold_the_top_class(k, seed, score):
    p, y = calibrated(200, k, seed)
    sets = ConformalLabelSets(0.2, score).fit(p[:100], y[:100]).predict(p[100:])
    assert sets.any(axis=1).all() and sets[np.arange(100), p[100:].argmax(1)].all()


def test_bad_input():
    p, y = calibrated(20, 3, 0)
    with pytest.raises(InputError, match="too few for 99% coverage"):
        ConformalLabelSets(0.01).fit(p, y)
    with pytest.raises(InputError, match="classes .* too few calibration rows"):
        ConformalLabelSets(0.1, class_conditional=True).fit(p, y)
    with pytest.raises(InputError, match="strictly between 0 and 1"):
        ConformalLabelSets(0.0)
    with pytest.raises(InputError, match="unknown conformal score"):
        ConformalLabelSets(0.1, "raps")
    with pytest.raises(InputError, match="outside the class list"):
        ConformalLabelSets(0.1).fit(p, y + 3)


def test_soft_labels():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    s = soft_labels(p, np.array([1, 2]), 0.5)
    np.testing.assert_allclose(s, [[0.35, 0.6, 0.05], [0.05, 0.05, 0.9]])
    np.testing.assert_allclose(soft_labels(p, np.array([1, 2]), 1.0), np.eye(3)[[1, 2]])
