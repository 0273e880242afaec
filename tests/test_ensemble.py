"""Aggregation of judge votes with confident learning: exact math, Dawid-Skene's learned trust, and the calibration on planted labels."""

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


def planted_setup(n: int = 900, seed: int = 0, calibration_classes: tuple[int, ...] = (0, 1, 2)):
    """Three classes, 15% wrong labels; 120 calibration rows with right labels (of ``calibration_classes``),
    each asked again under a planted other class. Judges: ``good`` knows right from wrong, ``constant``
    answers the same always, ``biased`` likes class 0 whatever it sees."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    wrong = rng.random(n) < 0.15
    right_rows = np.flatnonzero(~wrong & np.isin(labels, calibration_classes))
    rows = np.sort(rng.choice(right_rows, 120, replace=False))
    planted = (labels[rows] + rng.integers(1, 3, len(rows))) % 3

    def judges(is_wrong: np.ndarray, label: np.ndarray) -> dict[str, np.ndarray]:
        m = len(label)
        return {
            "good": np.clip(np.where(is_wrong, rng.normal(0.3, 0.2, m), rng.normal(0.75, 0.2, m)), 0, 1),
            "constant": np.full(m, 0.8),
            "biased": np.where(label == 0, 0.9, 0.3),
        }

    cl = np.clip(np.where(wrong, rng.normal(0.35, 0.25, n), rng.normal(0.65, 0.25, n)), 0, 1)
    return wrong, labels, cl, judges(wrong, labels), rows, planted, judges(np.ones(len(rows), bool), planted)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_calibrated_weighs_judges_by_what_they_show_on_planted_labels(seed):
    from labelq.judges.ensemble import calibrated

    wrong, labels, cl, given, rows, planted, on_planted = planted_setup(seed=seed, calibration_classes=(1, 2))
    post, info = calibrated(given, cl, labels, rows, planted, on_planted)
    per = info["calibration"]["judges"]
    assert per["constant"]["coefficient"] == 0.0 and info["annotator_information"]["constant"] == 0.0  # no signal: no weight
    # the biased judge seems to know, pooled over classes (it says 'wrong' to every class-1 and class-2 label, and the
    # calibration rows have only those given); within a class it says the same to right and wrong: (almost) no weight
    assert abs(per["biased"]["coefficient"]) < 0.1 * per["good"]["coefficient"]
    assert per["good"]["planted_auroc"] > 0.85 and per["biased"]["planted_auroc"] == pytest.approx(0.5)
    auc = roc_auc_score(wrong, post)
    assert auc >= roc_auc_score(wrong, 1 - given["good"]) - 0.03 and auc > roc_auc_score(wrong, 1 - cl) + 0.03


def test_calibrated_with_judges_that_know_nothing_is_confident_learning():
    from labelq.judges.ensemble import calibrated

    wrong, labels, cl, given, rows, planted, on_planted = planted_setup(seed=4)
    post, info = calibrated({"constant": given["constant"]}, cl, labels, rows, planted, {"constant": on_planted["constant"]})
    prior = np.clip(1 - cl, 1e-3, 1 - 1e-3)
    np.testing.assert_allclose(post, prior)
    ignored, _ = calibrated(given, cl, labels, rows, planted, on_planted, {"good": 0.0, "biased": 0.0})
    np.testing.assert_allclose(ignored, prior)  # weight 0 ignores a judge however much it knows
    with_nan = {k: np.where(np.arange(len(v)) % 7 == 0, np.nan, v) for k, v in given.items()}
    post, _ = calibrated(with_nan, cl, labels, rows, planted, on_planted)  # missing votes: no evidence, not an error
    assert np.all(np.isfinite(post)) and np.all((post >= 0) & (post <= 1))


def test_calibration_rows_and_planted_labels():
    from labelq.judges.calibration import calibration_rows, planted_labels

    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(500, int), np.ones(30, int), np.full(200, 2)]
    flagged = np.r_[np.arange(480, 500), np.arange(510, 530)]  # 20 of class 0 and 20 of class 1
    unflagged = np.setdiff1d(np.arange(len(labels)), flagged)
    rows = calibration_rows(labels, unflagged, flagged, 90, seed=1)
    assert len(rows) == 90 and len(set(rows.tolist())) == 90
    assert np.bincount(labels[rows]).tolist() == [30, 30, 30]  # as evenly as the rows allow
    assert np.isin(rows[labels[rows] == 1], np.arange(500, 510)).sum() == 10  # class 1's 10 unflagged rows come first
    assert np.isin(rows[labels[rows] == 0], flagged).sum() == 0
    assert len(calibration_rows(labels, unflagged, flagged, 0, seed=1)) == 0

    probs = rng.dirichlet(np.ones(4), 4000)
    given = rng.integers(0, 4, 4000)
    planted = planted_labels(given, probs, seed=0)
    assert (planted != given).all()
    other = probs.copy()
    other[np.arange(4000), given] = 0
    expected = (other / other.sum(1, keepdims=True)).sum(0)  # drawn in proportion to the model's other classes
    assert np.abs(np.bincount(planted, minlength=4) - expected).max() < 4 * np.sqrt(expected.max())
    assert (planted_labels(np.array([1]), np.array([[0.0, 1.0, 0.0]]), seed=0) != 1).all()  # nothing elsewhere: uniform


def test_the_audit_combines_by_calibration_and_falls_back_without_it(caplog):
    import pyarrow as pa
    import pyarrow.compute as pc

    from labelq.detect.confident_learning import Detection
    from labelq.judges.ensemble import calibrated, combine, combine_judges, judge_evidence

    wrong, labels, cl, given, rows, planted, on_planted = planted_setup(seed=5)
    ids = [f"r{i}" for i in range(len(labels))]

    def table(values: dict[str, np.ndarray], at: np.ndarray, **extra) -> pa.Table:
        return pa.table(
            {
                "id": [ids[i] for _ in values for i in at],
                "judge": [n for n in values for _ in at],
                "p_label_correct": np.concatenate(list(values.values())),
                "proposed_label": pa.nulls(len(values) * len(at), pa.int64()),
                **{k: np.tile(v, len(values)) for k, v in extra.items()},
            }
        )

    everyone = np.arange(len(labels))
    ev = judge_evidence(table(given, everyone), ids, 3)
    detection = Detection("confident_learning", cl, cl < 0.3, labels)
    votes_planted = table(on_planted, rows, given_label=labels[rows], planted_label=planted)
    post, info = combine_judges(ev, votes_planted, detection, "calibrated", {})
    assert info["aggregation"] == "calibrated" and info["calibration"]["planted_rows"] == len(rows)
    np.testing.assert_allclose(post, calibrated(given, cl, labels, rows, planted, on_planted)[0])

    few = votes_planted.filter(pc.is_in(votes_planted["id"], pa.array([ids[i] for i in rows[:5]])))
    for missing in (None, few):  # no calibration (--judge-sample 0), or too little of it: Dawid-Skene, and the log says so
        with caplog.at_level("WARNING", logger="labelq.judges.ensemble"):
            post, info = combine_judges(ev, missing, detection, "calibrated", {})
        assert info["aggregation"] == "dawid_skene" and "too few votes on planted labels" in caplog.text
        np.testing.assert_allclose(post, combine(given, cl, cl < 0.3, "dawid_skene")[0])
        caplog.clear()
