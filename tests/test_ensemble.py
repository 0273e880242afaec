"""Aggregation of judge votes with confident learning: exact math, and Dawid-Skene's learned trust."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from labelq.errors import InputError
from labelq.judges.ensemble import combine, dawid_skene


def test_mean_and_majority_are_exact():
    judges = {"a": np.array([0.9, 0.2, np.nan]), "b": np.array([0.7, 0.4, 0.1])}
    cl_score, cl_flag = np.array([0.8, 0.1, 0.3]), np.array([False, True, True])
    mean, _ = combine(judges, cl_score, cl_flag, "mean")
    np.testing.assert_allclose(mean, [(0.1 + 0.3 + 0.2) / 3, (0.8 + 0.6 + 0.9) / 3, (0.9 + 0.7) / 2])
    majority, _ = combine(judges, cl_score, cl_flag, "majority")
    np.testing.assert_allclose(majority, [0.0, 1.0, 1.0])
    with pytest.raises(InputError, match="unknown aggregation"):
        combine(judges, cl_score, cl_flag, "vibes")


def synthetic(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    wrong = rng.random(n) < 0.3
    informative = np.clip(np.where(wrong, rng.normal(0.25, 0.2, n), rng.normal(0.75, 0.2, n)), 0, 1)
    always_no = np.full(n, 0.2)  # a judge that answers the same whatever it sees (as SmolLM2 does)
    cl_score = np.clip(np.where(wrong, rng.normal(0.3, 0.25, n), rng.normal(0.7, 0.25, n)), 0, 1)
    return wrong, informative, always_no, cl_score


def test_dawid_skene_learns_whom_to_trust():
    wrong, informative, always_no, cl = synthetic()
    post, info = combine({"good": informative, "constant": always_no}, cl, cl < 0.3, "dawid_skene")
    worth = info["annotator_information"]
    assert worth["constant"] < 0.05 < worth["good"]  # the constant judge carries no weight
    auc_ds, auc_cl = roc_auc_score(wrong, post), roc_auc_score(wrong, 1 - cl)
    assert auc_ds > auc_cl + 0.03  # an informative judge adds to confident learning
    naive, _ = combine({"good": informative, "constant": always_no}, cl, cl < 0.3, "mean")
    assert roc_auc_score(wrong, naive) <= auc_ds + 1e-9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_useless_judges_leave_confident_learning_as_it_was(seed):
    wrong, _, always_no, cl = synthetic(seed=seed)
    post, info = combine({"constant": always_no, "constant2": np.full(len(cl), 0.9)}, cl, cl < 0.3, "dawid_skene")
    # the same ranking, up to ties the prior's clipping at 1e-3 makes among scores of exactly 0 or 1
    assert roc_auc_score(wrong, post) == pytest.approx(roc_auc_score(wrong, 1 - cl), abs=1e-4)
    assert max(info["annotator_information"].values()) < 0.05


@settings(max_examples=30, deadline=None)
@given(st.integers(5, 80), st.integers(0, 10_000))
def test_posteriors_are_probabilities_with_missing_votes(n, seed):
    rng = np.random.default_rng(seed)
    votes = [np.where(rng.random(n) < 0.3, -1, rng.integers(0, 4, n)) for _ in range(3)]
    post, tables = dawid_skene(votes, [4, 4, 4], rng.random(n))
    assert np.all(np.isfinite(post))
    assert post.shape == (n,) and np.all((post >= 0) & (post <= 1))
    for t in tables:
        np.testing.assert_allclose(t.sum(axis=1), 1.0)


def test_judge_weights():
    wrong, informative, always_no, cl = synthetic(seed=3)
    zero, _ = combine({"good": informative}, cl, cl < 0.3, "dawid_skene", {"good": 0.0})
    assert roc_auc_score(wrong, zero) == pytest.approx(roc_auc_score(wrong, 1 - cl), abs=1e-4)  # weight 0: ignored
    full, _ = combine({"good": informative}, cl, cl < 0.3, "dawid_skene", {"good": 1.0})
    assert roc_auc_score(wrong, full) > roc_auc_score(wrong, zero)
    judges = {"a": np.array([0.9]), "b": np.array([0.5])}
    mean, _ = combine(judges, np.array([0.3]), np.array([True]), "mean", {"a": 3.0})
    np.testing.assert_allclose(mean, [(3 * 0.1 + 0.5 + 0.7) / 5])
