"""labelq's confident learning (``labelq.detect.streaming_cl``) gives cleanlab's results exactly: every
filter, every score, the counts, on random, adversarial and real pred_probs, in any chunk size and
from a ``.npy`` file read by chunks."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import require

from labelq.detect import ConfidentLearning, streaming_cl
from labelq.predict.probs import NpyProbs

LABEL_ERRORS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "label-errors"


def assert_same_as_cleanlab(labels: np.ndarray, probs: np.ndarray, rows: int | None = None, source=None) -> None:
    from cleanlab.count import compute_confident_joint, estimate_latent, num_label_issues
    from cleanlab.filter import _keep_at_least_n_per_class
    from cleanlab.filter import find_label_issues as cl_find
    from cleanlab.rank import get_label_quality_scores

    source = probs if source is None else source
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cleanlab's warnings about tiny classes
        for method in streaming_cl.SCORE_METHODS:
            counts = streaming_cl.count(labels, source, method, rows=rows)
            expected = get_label_quality_scores(labels, probs, method=method)
            np.testing.assert_array_equal(counts.score, expected, err_msg=method)
            assert counts.score.dtype == expected.dtype
        counts = streaming_cl.count(labels, source, rows=rows)
        assert counts.num_label_issues() == num_label_issues(labels, probs)
        calibrated = compute_confident_joint(labels, probs)
        np.testing.assert_array_equal(counts.calibrated_joint(), calibrated)
        np.testing.assert_array_equal(streaming_cl.keep_at_least_one_per_class(calibrated.T), _keep_at_least_n_per_class(calibrated.T, 1))
        np.testing.assert_allclose(streaming_cl.noise_matrix(counts), estimate_latent(calibrated, labels)[1], rtol=1e-12, atol=1e-15)
        for filter_by in streaming_cl.FILTER_BY:
            ours = streaming_cl.find_label_issues(counts, source, filter_by, rows=rows)
            theirs = cl_find(labels, probs, filter_by=filter_by, n_jobs=1)
            assert np.array_equal(ours, theirs), (filter_by, int(ours.sum()), int(theirs.sum()), np.flatnonzero(ours != theirs)[:10])


def softmax_probs(rng: np.random.Generator, n: int, k: int, scale: float, dtype=np.float64) -> np.ndarray:
    logits = rng.normal(0, scale, (n, k))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)).astype(dtype)


@pytest.mark.parametrize("seed", range(12))
def test_random_pred_probs(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(30, 3000)), int(rng.integers(2, 15))
    probs = softmax_probs(rng, n, k, rng.uniform(0.3, 4), np.float32 if seed % 2 else np.float64)
    labels = rng.integers(0, k, n)
    assert_same_as_cleanlab(labels, probs, rows=int(rng.integers(5, 700)))


@pytest.mark.parametrize("decimals", [1, 2])
def test_ties_everywhere(decimals):
    """Rounded probabilities: equal margins straddle the cuts, and cleanlab's argsort order must be kept."""
    rng = np.random.default_rng(decimals)
    probs = np.round(softmax_probs(rng, 2500, 6, 1.5), decimals)
    probs[probs.sum(axis=1) == 0, 0] = 1
    probs /= probs.sum(axis=1, keepdims=True)
    labels = rng.integers(0, 6, 2500)
    assert_same_as_cleanlab(labels, probs, rows=97)


def test_a_zero_column_an_empty_class_and_a_class_of_one():
    rng = np.random.default_rng(5)
    probs = softmax_probs(rng, 1500, 7, 2.0, np.float32)
    probs[:, 3] = 0  # no row ever predicts class 3
    probs /= probs.sum(axis=1, keepdims=True)
    labels = rng.integers(0, 7, 1500)
    labels[labels == 5] = 0  # no row is labelled 5
    labels[labels == 6] = 1
    labels[17] = 6  # one row is labelled 6
    assert_same_as_cleanlab(labels, probs, rows=128)


def test_the_signal_free_case_searches_whole_classes():
    """Pure noise: many columns need rows whose margin is not positive, which the first search skips."""
    rng = np.random.default_rng(9)
    probs = softmax_probs(rng, 3000, 5, 0.05)
    labels = rng.integers(0, 5, 3000)
    assert_same_as_cleanlab(labels, probs, rows=250)


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_human_verified_label_error_sets(dataset, tmp_path):
    """The label-errors sets of "Pervasive Label Errors in Test Sets", in memory and read from .npy by chunks."""
    require(LABEL_ERRORS.exists(), "../shared/benchmarks/label-errors beside the checkout")
    d = LABEL_ERRORS / dataset
    probs, labels = np.load(d / "pred_probs.npy"), np.load(d / "labels.npy").astype(np.int64)
    assert_same_as_cleanlab(labels, probs)
    on_disk = NpyProbs(d / "pred_probs.npy")
    assert_same_as_cleanlab(labels, probs, rows=999, source=on_disk)


def test_the_detector_reports_cleanlabs_estimates():
    from cleanlab.count import estimate_joint, num_label_issues
    from cleanlab.filter import find_label_issues as cl_find
    from cleanlab.rank import get_label_quality_scores

    rng = np.random.default_rng(3)
    probs = softmax_probs(rng, 2000, 4, 2.0)
    labels = rng.integers(0, 4, 2000)
    det = ConfidentLearning(score_method="normalized_margin").detect(labels, probs)
    np.testing.assert_array_equal(det.is_issue, cl_find(labels, probs))
    np.testing.assert_array_equal(det.score, np.clip(get_label_quality_scores(labels, probs, method="normalized_margin"), 0, 1))
    np.testing.assert_allclose(det.extra["joint"], estimate_joint(labels, probs))
    assert det.extra["num_label_issues_estimate"] == num_label_issues(labels, probs)


def test_columns_whose_leaders_have_negative_margins():
    """Rows confidently counted as another class although their own class is still more probable: their
    margins are negative, so the rows whose argmax is their label must be searched too."""
    rng = np.random.default_rng(11)
    n = 3000
    labels = rng.integers(0, 3, n)
    probs = np.empty((n, 3))
    unsure = rng.random(n) < 0.3
    probs[:] = [0.9, 0.05, 0.05]
    probs[unsure & (labels == 0)] = [0.6, 0.4, 0.0]
    probs[labels == 1] = [0.1, 0.3, 0.6]
    probs[labels == 2] = [0.05, 0.15, 0.8]
    probs += rng.uniform(0, 0.02, probs.shape)
    probs /= probs.sum(axis=1, keepdims=True)
    counts = streaming_cl.count(labels, probs)
    assert counts.confident_joint[0, 1] > 100  # label 0, confidently 1, with p_1 < p_0
    assert_same_as_cleanlab(labels, probs, rows=200)


def test_an_audit_of_a_npy_file_reads_it_by_chunks(tmp_path, monkeypatch):
    """``labelq audit labels.parquet --pred-probs p.npy``: the file is checked, detected on and published a
    chunk at a time (tiny chunks here), with cleanlab's flags and the same result as the Parquet input."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from cleanlab.filter import find_label_issues as cl_find

    from labelq import predict
    from labelq.pipeline import AuditConfig, audit

    monkeypatch.setattr(streaming_cl, "CHUNK_BYTES", 4096)
    monkeypatch.setattr(predict.probs, "_rows", lambda source, nbytes=0: 37)
    rng = np.random.default_rng(4)
    probs = softmax_probs(rng, 1200, 5, 2.5, np.float32)
    probs[7] *= 1.004  # within tolerance of summing to 1: renormalized on every read
    labels = rng.integers(0, 5, 1200)
    np.save(tmp_path / "p.npy", probs)
    ids = [f"r{i}" for i in range(1200)]
    pq.write_table(pa.table({"id": ids, "label": labels}), tmp_path / "labels.parquet")
    pq.write_table(pa.table({"id": ids[::-1], "pred_probs": pa.array(probs[::-1].tolist(), pa.list_(pa.float32()))}), tmp_path / "p.parquet")

    by_npy = audit(AuditConfig.from_options(str(tmp_path / "labels.parquet"), name="npy", store=str(tmp_path / "s"), pred_probs=str(tmp_path / "p.npy")))
    by_parquet = audit(AuditConfig.from_options(str(tmp_path / "labels.parquet"), name="pq", store=str(tmp_path / "s"), pred_probs=str(tmp_path / "p.parquet")))
    fixed = probs.copy()
    fixed[7] /= fixed[7].sum()
    flags = by_npy.version.read(["is_label_issue"])["is_label_issue"].to_numpy(zero_copy_only=False)
    np.testing.assert_array_equal(flags, cl_find(labels, fixed))
    np.testing.assert_array_equal(flags, by_parquet.version.read(["is_label_issue"])["is_label_issue"].to_numpy(zero_copy_only=False))
    published = by_npy.version.read_table("pred_probs")
    assert published["id"].to_pylist() == ids and published["model"][0].as_py() == "user:p.npy"
    assert by_parquet.version.read_table("pred_probs")["model"][0].as_py() == "user:p.parquet"  # aligned by id into the cache, then read by chunks
    np.testing.assert_array_equal(predict.pred_probs_view(published), fixed)
    assert by_npy.version.manifest().audit.num_label_issues_estimate == by_parquet.version.manifest().audit.num_label_issues_estimate
    # a few rows, as the judges' calibration reads them: as the chunks read them, renormalized
    given = predict.GivenProbs.open(tmp_path / "p.npy", pa.chunked_array([ids]), 5)
    np.testing.assert_array_equal(given.rows(np.array([900, 7, 36, 37])), fixed[[900, 7, 36, 37]])
    assert given.rows(np.array([], dtype=np.int64)).shape == (0, 5)


@pytest.mark.parametrize("filter_by", ["prune_by_noise_rate", "both", "prune_by_class", "confident_learning", "low_normalized_margin"])
def test_row_ranges_change_nothing(filter_by):
    """The passes over several row ranges (as on a cluster), merged: the same flags and counts."""
    from labelq.detect.streaming_cl import row_ranges

    rng = np.random.default_rng(21)
    probs = np.round(softmax_probs(rng, 2000, 6, 1.5, np.float32), 2)  # ties across the ranges too
    probs /= probs.sum(axis=1, keepdims=True)
    labels = rng.integers(0, 6, 2000)
    whole = ConfidentLearning(filter_by).detect(labels, probs)
    parted = ConfidentLearning(filter_by).detect(labels, probs, parts=row_ranges(2000, 7))
    np.testing.assert_array_equal(parted.is_issue, whole.is_issue)
    np.testing.assert_array_equal(parted.score, whole.score)
    assert parted.extra["num_label_issues_estimate"] == whole.extra["num_label_issues_estimate"]
    np.testing.assert_array_equal(parted.extra["joint"], whole.extra["joint"])


def test_on_a_local_dask_cluster_the_flags_are_a_single_process_run(tmp_path):
    """Two worker processes read their own row ranges of a .npy file; the flags equal one process's and cleanlab's."""
    from cleanlab.filter import find_label_issues as cl_find
    from distributed import Client, LocalCluster

    from labelq.detect.dask_cl import detect_on_dask

    rng = np.random.default_rng(8)
    probs = softmax_probs(rng, 6000, 8, 2.0, np.float32)
    labels = rng.integers(0, 8, 6000)
    np.save(tmp_path / "p.npy", probs)
    on_disk = NpyProbs(tmp_path / "p.npy")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        for filter_by in ("prune_by_noise_rate", "both"):
            distributed = detect_on_dask(labels, on_disk, client, partitions=5, filter_by=filter_by)
            local = ConfidentLearning(filter_by).detect(labels, probs)
            np.testing.assert_array_equal(distributed.is_issue, local.is_issue)
            np.testing.assert_array_equal(distributed.is_issue, cl_find(labels, probs, filter_by=filter_by))
            np.testing.assert_array_equal(distributed.score, local.score)
