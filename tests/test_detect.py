"""Confident learning: injected flips are found; outputs are well-formed; it matches cleanlab on real verified errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import flip_labels, require, with_labels
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from labelq.detect import ConfidentLearning, detections_table, find_label_issues
from labelq.errors import InputError
from labelq.predict import cross_val_pred_probs, pred_probs_array

LABEL_ERRORS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "label-errors"


@pytest.fixture(scope="module")
def noisy_digits(digits):
    labels = digits["label"].to_numpy()
    noisy, flipped = flip_labels(labels, 10, 0.05, seed=7)
    examples = with_labels(digits, noisy)
    probs = pred_probs_array(cross_val_pred_probs(examples, n_folds=5, seed=0))  # the default model (CNN)
    return noisy, flipped, probs


def test_injected_flips_are_found(noisy_digits):
    noisy, flipped, probs = noisy_digits
    det = find_label_issues(noisy, probs)
    tp = (det.is_issue & flipped).sum()
    assert tp / det.is_issue.sum() > 0.8  # precision
    assert tp / flipped.sum() > 0.8  # recall
    from sklearn.metrics import average_precision_score

    assert average_precision_score(flipped, 1 - det.score) > 0.9
    assert (det.suggested_label[det.is_issue & flipped] == probs.argmax(1)[det.is_issue & flipped]).all()


def test_noise_estimates_are_well_formed(noisy_digits):
    noisy, flipped, probs = noisy_digits
    det = ConfidentLearning().detect(noisy, probs)
    joint, nm, rate = det.extra["joint"], det.extra["noise_matrix"], det.extra["class_error_rate"]
    assert joint.shape == (10, 10) and abs(joint.sum() - 1) < 1e-6
    np.testing.assert_allclose(nm.sum(axis=0), 1, atol=1e-6)  # columns of P(given | true) sum to 1
    assert ((rate >= 0) & (rate <= 1)).all()
    assert abs(det.extra["num_label_issues_estimate"] - flipped.sum()) < 0.5 * flipped.sum()
    table = detections_table([str(i) for i in range(len(noisy))], det)
    assert table.column_names == ["id", "detector", "score", "is_issue", "suggested_label"]


@pytest.mark.parametrize("filter_by", ["prune_by_class", "both", "confident_learning", "predicted_neq_given"])
def test_filters(noisy_digits, filter_by):
    noisy, flipped, probs = noisy_digits
    det = ConfidentLearning(filter_by=filter_by).detect(noisy, probs)
    assert (det.is_issue & flipped).sum() > 0.7 * flipped.sum()


def test_unknown_options_are_refused():
    with pytest.raises(InputError, match="unknown filter_by 'magic'"):
        ConfidentLearning(filter_by="magic")
    with pytest.raises(InputError, match="unknown score method"):
        ConfidentLearning(score_method="vibes")


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 5).flatmap(lambda k: st.tuples(st.just(k), arrays(np.float64, (40, k), elements=st.floats(0.01, 1.0)))), st.integers(0, 1000))
def test_scores_stay_in_unit_interval(k_probs, seed):
    k, raw = k_probs
    probs = raw / raw.sum(1, keepdims=True)
    labels = np.random.default_rng(seed).integers(0, k, 40)
    labels[:k] = np.arange(k)  # every class present
    det = find_label_issues(labels, probs)
    assert ((det.score >= 0) & (det.score <= 1)).all()
    assert det.is_issue.dtype == bool and det.suggested_label.max() < k


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_matches_cleanlab_on_human_verified_errors(dataset):
    from cleanlab.filter import find_label_issues as cl_find

    require(LABEL_ERRORS.exists(), "../shared/benchmarks/label-errors beside the checkout")

    d = LABEL_ERRORS / dataset
    probs, labels = np.load(d / "pred_probs.npy"), np.load(d / "labels.npy").astype(np.int64)
    truth = json.loads((d / "truth.json").read_text())
    det = find_label_issues(labels, probs)
    np.testing.assert_array_equal(det.is_issue, cl_find(labels, probs))
    from sklearn.metrics import average_precision_score

    ids = np.array([it["id"] for it in truth["items"]])
    is_error = np.array([it["label_error"] for it in truth["items"]])
    # over the reviewed ids, low scores rank confirmed errors well above their base rate (.15 / .20)
    assert average_precision_score(is_error, 1 - det.score[ids]) > 1.3 * is_error.mean()
    assert (det.is_issue[ids] & is_error).sum() >= 7


def test_the_audit_takes_its_detector_from_the_registry(tmp_path):
    from dataclasses import dataclass

    from click.testing import CliRunner

    from labelq.cli import main
    from labelq.detect import DETECTORS, Detection, register_detector
    from labelq.pipeline import AuditConfig, audit

    @register_detector("low-self-confidence")
    @dataclass
    class LowSelfConfidence:  # a plug-in: flag rows whose given label has probability below `threshold`
        threshold: float = 0.5
        name: str = "low-self-confidence"

        def detect(self, labels, pred_probs):
            p = pred_probs[np.arange(len(labels)), labels]
            return Detection(self.name, p, p < self.threshold, pred_probs.argmax(1))

    try:
        result = audit(AuditConfig.from_options(source="digits", store=str(tmp_path / "s"), model="logreg", n_folds=3, detector="low-self-confidence"))
        m = result.version.manifest_json()
        assert m["detectors"] == ["low-self-confidence"]
        rows = result.version.read()
        probs = np.array(result.version.read_table("pred_probs")["pred_probs"].to_pylist(), dtype=np.float64)
        expected = probs[np.arange(rows.num_rows), rows["label"].to_numpy()] < 0.5
        assert rows["is_label_issue"].to_numpy(zero_copy_only=False).tolist() == expected.tolist() and expected.any()
        assert result.history.detector["name"] == "low-self-confidence"
    finally:
        DETECTORS.pop("low-self-confidence")
    out = CliRunner().invoke(main, ["audit", "digits", "--store", str(tmp_path / "s2"), "--detector", "nope", "--no-prefect"])
    assert out.exit_code == 2 and "unknown detector 'nope'" in out.output and "confident_learning" in out.output
