"""The regression detection core (``labelq.detect.regression``) on real data with planted errors: scikit-learn's
diabetes table (442 patients, a disease-progression score), ridge's out-of-fold predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, cross_val_predict

from labelq.detect.regression import detect_regression, mixture, robust_scale
from labelq.errors import InputError


@pytest.fixture(scope="module")
def shifted():
    """5% of the values moved by 3 standard deviations; ridge's 5-fold predictions on the noisy values."""
    d = load_diabetes()
    y = d.target.astype(np.float64)
    rng = np.random.default_rng(0)
    rows = rng.choice(len(y), 22, replace=False)
    noisy = y.copy()
    noisy[rows] += rng.choice([-1.0, 1.0], len(rows)) * 3 * y.std()
    pred = cross_val_predict(Ridge(), d.data, noisy, cv=KFold(5, shuffle=True, random_state=0))
    return noisy, pred, noisy != y


def test_scores_are_cleanlabs_on_the_same_predictions(shifted):
    from cleanlab.regression.rank import get_label_quality_scores

    noisy, pred, _ = shifted
    for method in ("outre", "residual"):
        np.testing.assert_allclose(detect_regression(noisy, pred, method=method).score, get_label_quality_scores(noisy, pred, method=method))
    # the default ranks as cleanlab's residual score does, and is CleanLearning's score given the uncertainty
    default = detect_regression(noisy, pred).score
    assert (np.argsort(default, kind="stable") == np.argsort(-np.abs(noisy - pred), kind="stable")).all()
    z = np.abs(noisy - pred) / robust_scale(noisy - pred)
    np.testing.assert_allclose(default, np.exp(-z / np.median(z)))


def test_the_data_chooses_the_flags(shifted):
    noisy, pred, truth = shifted
    found = detect_regression(noisy, pred)
    hits = int((found.is_issue & truth).sum())
    assert hits >= 0.85 * truth.sum() and hits >= 0.85 * found.is_issue.sum()  # F1 0.93 in bench/regression.py
    assert abs(found.noise_share - truth.mean()) < 0.03 and (found.suggested == pred).all()
    clean = np.random.default_rng(1).normal(size=5000)
    p_wrong, share, sigma = mixture(np.abs(clean))
    assert share < 0.02 and (p_wrong > 0.5).mean() < 0.005 and abs(sigma - 1) < 0.05  # clean residuals: next to nothing flagged


def test_bad_input_is_refused(shifted):
    noisy, pred, _ = shifted
    with pytest.raises(InputError, match="unknown regression score"):
        detect_regression(noisy, pred, method="median")
    with pytest.raises(InputError, match="NaN"):
        detect_regression(np.r_[noisy[:-1], np.nan], pred)
    with pytest.raises(InputError, match="spread must be positive"):
        detect_regression(noisy, pred, spread=np.zeros(len(noisy)))
