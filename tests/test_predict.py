"""Out-of-sample pred_probs: partitions, the default models, column alignment, the fold cache, user files."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from labelq import schema as S
from labelq.errors import InputError, SourceNotFoundError
from labelq.ingest import decode_images, load_examples
from labelq.predict import (
    FoldCache,
    FoldPlan,
    GivenProbs,
    ModelSpec,
    cross_val_pred_probs,
    load_pred_probs,
    make_folds,
    pred_probs_array,
    predict_fold,
    resolve_model,
)
from labelq.predict.torch_cnn import CNNClassifier


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=20, max_size=200), st.integers(2, 5), st.integers(0, 10_000))
def test_folds_are_a_stratified_partition(labels, n_folds, seed):
    labels = np.array(labels)
    counts = np.bincount(labels)
    assume(counts[counts > 0].min() >= n_folds)  # a stratified partition needs n_folds rows of every class
    folds = make_folds(labels, n_folds, seed)
    assert folds.min() == 0 and folds.max() == n_folds - 1  # every row in exactly one fold
    for c in np.unique(labels):  # every class spread over the folds as evenly as possible
        per_fold = np.bincount(folds[labels == c], minlength=n_folds)
        assert per_fold.max() - per_fold.min() <= 1


def test_cross_val_on_digits_predicts_every_id_once_and_well(digits, tmp_path, caplog):
    table = cross_val_pred_probs(digits, model="logreg", n_folds=4, seed=1, cache_dir=tmp_path)
    assert table.schema.equals(S.pred_probs_schema(10))
    assert table["id"].to_pylist() == digits["id"].to_pylist()
    assert sorted(set(table["fold"].to_pylist())) == [0, 1, 2, 3]
    probs = pred_probs_array(table)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (probs.argmax(1) == digits["label"].to_numpy()).mean() > 0.93
    caplog.set_level(logging.INFO, logger="labelq")
    caplog.clear()
    again = cross_val_pred_probs(digits, model="logreg", n_folds=4, seed=1, cache_dir=tmp_path)
    assert caplog.text.count("reused from cache") == 4 and "fitting" not in caplog.text
    np.testing.assert_array_equal(pred_probs_array(again), probs)
    caplog.clear()
    cross_val_pred_probs(digits, model="logreg", n_folds=4, seed=2, cache_dir=tmp_path)  # another seed: new folds
    assert "reused from cache" not in caplog.text


def test_cnn_default_on_digits_is_accurate(digits):
    spec = resolve_model("auto", "image")
    assert spec.name == "cnn"
    probs = pred_probs_array(cross_val_pred_probs(digits, n_folds=3, seed=0))
    assert (probs.argmax(1) == digits["label"].to_numpy()).mean() > 0.95


def test_folds_are_scikit_learns_stratified_folds_without_importing_it():
    from sklearn.model_selection import StratifiedKFold

    from labelq.predict.crossval import make_folds

    rng = np.random.default_rng(0)
    for seed in range(20):
        k, n, n_folds = int(rng.integers(2, 30)), int(rng.integers(50, 3000)), int(rng.integers(2, 8))
        labels = rng.permutation(np.concatenate([rng.integers(0, k, n), np.repeat(np.arange(k), n_folds)]))
        expected = np.empty(len(labels), np.int32)
        for f, (_, test) in enumerate(StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels)):
            expected[test] = f
        assert np.array_equal(make_folds(labels, n_folds, seed), expected)
    code = "import sys; from labelq.predict.crossval import make_folds; from labelq.predict.torch_cnn import CNNClassifier; print('sklearn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_cnn_follows_the_sklearn_contract(digits):
    X = decode_images(digits["image"].slice(0, 300))
    y = np.array(["a", "b", "c"])[digits["label"].to_numpy()[:300] % 3]
    model = CNNClassifier(epochs=2, seed=3)
    assert clone(model).get_params() == model.get_params()
    assert model.fit(X, y) is model
    assert list(model.classes_) == ["a", "b", "c"]
    p = model.predict_proba(X[:10])
    assert p.shape == (10, 3) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert set(model.predict(X[:10])) <= {"a", "b", "c"}
    big = np.repeat(np.repeat(X[:40], 4, axis=1), 4, axis=2)  # 32x32 works too (adaptive pooling)
    assert CNNClassifier(epochs=1).fit(big, y[:40]).predict_proba(big).shape == (40, 3)
    with pytest.raises(ValueError, match="expects images of shape"):
        model.fit(np.zeros((5, 4)), y[:5])


def test_fold_without_a_class_keeps_columns_aligned():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    labels = np.array([0] * 28 + [1] * 28 + [2] * 4)
    folds = np.array([1] * 30 + [0] * 26 + [0] * 4)  # class 2 only in fold 0: its training set lacks class 2
    plan = FoldPlan(X, labels, folds, 3, resolve_model("logreg", "tabular"), 0, "test")
    probs = predict_fold(plan, 0)
    assert probs.shape == (30, 3) and np.all(probs[:, 2] == 0) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_text_and_tabular_defaults(tmp_path):
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True).frame.rename(columns={"target": "label"})
    pq.write_table(pa.Table.from_pandas(wine, preserve_index=False), tmp_path / "wine.parquet")
    t = load_examples(tmp_path / "wine.parquet")
    assert resolve_model("auto", S.info_of(t).modality).name == "hgb"
    probs = pred_probs_array(cross_val_pred_probs(t, n_folds=3, model_params={"max_iter": 50}))
    assert (probs.argmax(1) == t["label"].to_numpy()).mean() > 0.85

    path = tmp_path / "spam.csv"
    rng = np.random.default_rng(0)
    words = {"spam": ["win", "cash", "prize", "free", "offer"], "ham": ["meeting", "notes", "lunch", "project", "review"]}
    lines = ["text,label"]
    for i in range(200):
        label = "spam" if i % 2 else "ham"
        lines.append(" ".join(rng.choice(words[label], 6)) + f" msg{i}," + label)
    path.write_text("\n".join(lines))
    t = load_examples(path)
    assert resolve_model("auto", "text").name == "tfidf-logreg"
    probs = pred_probs_array(cross_val_pred_probs(t, n_folds=5))
    assert (probs.argmax(1) == t["label"].to_numpy()).mean() > 0.95


def test_unknown_model_and_params_are_refused():
    with pytest.raises(InputError, match="unknown model 'resnet'"):
        resolve_model("resnet", "image")
    with pytest.raises(InputError, match="does not take text inputs"):
        resolve_model("cnn", "text")
    with pytest.raises(InputError, match="has no parameters \\['depth'\\]"):
        resolve_model("cnn", "image", {"depth": 3})


def test_fold_cache_roundtrip(tmp_path):
    cache = FoldCache(tmp_path)
    assert cache.get("k", (3, 3)) is None
    cache.put("k", np.eye(3, dtype=np.float32))
    np.testing.assert_array_equal(cache.get("k", (3, 3)), np.eye(3))
    assert [p.name for p in tmp_path.iterdir()] == ["k.npz"]  # no temporary files left


def _examples(n: int = 6) -> pa.Table:
    from labelq.ingest import examples_from_raw
    from labelq.ingest.builtin import RawSource

    return examples_from_raw(
        RawSource(
            pa.table({"id": [f"r{i}" for i in range(n)], "label": [i % 3 for i in range(n)], "x": [float(i) for i in range(n)]}), class_names=["a", "b", "c"]
        )
    )


def test_user_pred_probs_npy_and_parquet(tmp_path):
    ex = _examples()
    probs = np.full((6, 3), 0.1)
    probs[np.arange(6), [0, 1, 2, 1, 1, 2]] = 0.8
    np.save(tmp_path / "p.npy", probs)
    t = load_pred_probs(tmp_path / "p.npy", ex)  # a .npy is read by chunks, never whole
    assert isinstance(t, GivenProbs) and t.shape == (6, 3) and t.model == "user:p.npy"
    np.testing.assert_array_equal(np.concatenate([chunk for _, chunk in t.chunks(4)]), probs)
    table = pa.Table.from_batches(list(t.to_batches()))  # the version's pred_probs table, batch by batch
    assert table["id"].to_pylist() == ex["id"].to_pylist()
    np.testing.assert_allclose(pred_probs_array(table), probs, atol=1e-6)
    order = [3, 1, 5, 0, 2, 4]  # Parquet keyed by id, in another order, read in batches of 2 rows
    pq.write_table(pa.table({"id": [f"r{i}" for i in order], "pred_probs": probs[order].tolist()}), tmp_path / "p.parquet", row_group_size=2)
    cache = tmp_path / "cache"
    given = load_pred_probs(tmp_path / "p.parquet", ex, cache)
    assert isinstance(given, GivenProbs) and given.model == "user:p.parquet" and given.path.parent == cache / "pred_probs"
    np.testing.assert_array_equal(np.concatenate([chunk for _, chunk in given.chunks(4)]), probs)  # aligned by id, float64 kept
    written = given.path.stat().st_mtime_ns
    assert load_pred_probs(tmp_path / "p.parquet", ex, cache).path == given.path and given.path.stat().st_mtime_ns == written  # reused
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(6)], **{c: probs[:, j] for j, c in enumerate("abc")}}), tmp_path / "cols.parquet")
    by_class = load_pred_probs(tmp_path / "cols.parquet", ex, cache)
    np.testing.assert_array_equal(np.concatenate([chunk for _, chunk in by_class.chunks(4)]), probs)
    f32 = pa.FixedSizeListArray.from_arrays(pa.array(probs.astype(np.float32).ravel()), 3)
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(6)], "pred_probs": f32}), tmp_path / "f32.parquet")
    assert load_pred_probs(tmp_path / "f32.parquet", ex, cache).dtype == np.float32


def test_user_pred_probs_from_a_folder_of_parquet_parts(tmp_path):
    """A folder of part files (a distributed job's output), rows in any order across the parts: aligned
    by id as one table would be, and reused while no part changes."""
    ex = _examples()
    probs = np.random.default_rng(3).dirichlet(np.ones(3), 6).astype(np.float32)
    parts = tmp_path / "preds.parquet"  # Spark names its output folders like files
    parts.mkdir()
    for name, rows in {"part-0.parquet": [4, 1], "part-1.parquet": [5, 0, 3], "part-2.parquet": [2]}.items():
        pq.write_table(pa.table({"id": [f"r{i}" for i in rows], "pred_probs": probs[rows].tolist()}), parts / name)
    cache = tmp_path / "cache"
    given = load_pred_probs(parts, ex, cache)
    np.testing.assert_array_equal(np.concatenate([chunk for _, chunk in given.chunks(4)]), probs.astype(np.float64))
    assert given.model == "user:preds.parquet" and load_pred_probs(parts, ex, cache).path == given.path
    pq.write_table(pa.table({"id": ["r2"], "pred_probs": [[1.0, 0.0, 0.0]]}), parts / "part-2.parquet")  # a part changed: aligned again
    again = load_pred_probs(parts, ex, cache)
    assert again.path != given.path and next(again.chunks(6))[1][2].tolist() == [1.0, 0.0, 0.0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no Parquet files"):
        load_pred_probs(tmp_path / "empty", ex, cache)


def test_user_pred_probs_from_more_parts_than_open_files_allow(tmp_path):
    """A distributed job may write thousands of parts: they are read one at a time, never all open at once."""
    import resource

    n = 120
    ex = _examples(n)
    probs = np.random.default_rng(4).dirichlet(np.ones(3), n)
    parts = tmp_path / "parts"
    parts.mkdir()
    for i in range(n):
        pq.write_table(pa.table({"id": [f"r{i}"], "pred_probs": probs[i : i + 1].tolist()}), parts / f"part-{i:04d}.parquet")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))  # fewer than the parts
    try:
        given = load_pred_probs(parts, ex, tmp_path / "cache")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    np.testing.assert_array_equal(np.concatenate([chunk for _, chunk in given.chunks(50)]), probs)


def test_user_pred_probs_bad_input(tmp_path, caplog):
    ex = _examples()
    good = np.full((6, 3), 1 / 3)
    cases = {
        "shape": (np.full((5, 3), 1 / 3), "must have shape \\(rows, classes\\) = \\(6, 3\\), got \\(5, 3\\)"),
        "nan": (np.where(np.eye(6, 3) > 0, np.nan, good), "NaN or infinite values in 3 rows"),
        "negative": (good - np.eye(6, 3), "negative values"),
        "sums": (good * 2, "off by more than"),
    }
    for name, (arr, msg) in cases.items():
        np.save(tmp_path / f"{name}.npy", arr)
        with pytest.raises(InputError, match=msg):
            load_pred_probs(tmp_path / f"{name}.npy", ex)
    np.save(tmp_path / "near.npy", good * 1.005)
    with caplog.at_level(logging.WARNING):
        t = load_pred_probs(tmp_path / "near.npy", ex)
    assert "renormalized 6 rows" in caplog.text
    np.testing.assert_allclose(np.concatenate([chunk for _, chunk in t.chunks(4)]).sum(1), 1, atol=1e-12)  # on every read
    pq.write_table(pa.table({"id": ["r0", "r1", "zz"], "pred_probs": good[:3].tolist()}), tmp_path / "ids.parquet")
    with pytest.raises(InputError, match="4 examples have no prediction.*1 predictions have no example"):
        load_pred_probs(tmp_path / "ids.parquet", ex, tmp_path / "cache")
    pq.write_table(pa.table({"key": [f"r{i}" for i in range(6)], "pred_probs": good.tolist()}), tmp_path / "noid.parquet")
    with pytest.raises(InputError, match="has no 'id' column"):
        load_pred_probs(tmp_path / "noid.parquet", ex, tmp_path / "cache")
    bad = np.where(np.eye(6, 3) > 0, np.nan, good)  # a Parquet table is checked as a .npy is
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(6)], "pred_probs": bad.tolist()}), tmp_path / "nan.parquet")
    with pytest.raises(InputError, match="NaN or infinite values in 3 rows"):
        load_pred_probs(tmp_path / "nan.parquet", ex, tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob(".tmp-*"))
    with pytest.raises(SourceNotFoundError):
        load_pred_probs(tmp_path / "none.npy", ex)
    np.save(tmp_path / "cut.npy", good)  # a copy cut short: its header still promises 6 rows
    with open(tmp_path / "cut.npy", "r+b") as fh:
        fh.truncate(fh.seek(0, 2) - 8)
    with pytest.raises(InputError, match="cut.npy ends before its 6 rows"):
        load_pred_probs(tmp_path / "cut.npy", ex)


def test_model_spec_config_is_stable():
    a, b = resolve_model("cnn", "image"), resolve_model("cnn", "image", {"epochs": 6})
    assert a.config_json() == b.config_json()
    assert ModelSpec("cnn", {**a.params, "epochs": 2}).config_json() != a.config_json()


def test_the_fold_cache_key_carries_threads_and_code_versions(digits):
    from dataclasses import replace

    from labelq.predict import plan_folds
    from labelq.predict.crossval import CODE_PACKAGES

    plan = plan_folds(digits.slice(0, 300), "logreg", 3, 0)
    assert set(plan.code_versions) == set(CODE_PACKAGES) and plan.code_versions["scikit-learn"] is not None
    keys = {plan.key(f) for f in range(3)}
    assert len(keys) == 3
    assert plan.key(0) == plan_folds(digits.slice(0, 300), "logreg", 3, 0).key(0)  # stable
    assert replace(plan, fold_threads=1).key(0) != plan.key(0)
    assert plan_folds(digits.slice(0, 300), "logreg", 3, 0, fold_threads=2).key(0) not in (plan.key(0), replace(plan, fold_threads=1).key(0))
    upgraded = {**plan.code_versions, "scikit-learn": "99.0"}
    assert replace(plan, code_versions=upgraded).key(0) != plan.key(0)  # a library upgrade retrains
    assert replace(plan, code_versions={**plan.code_versions, "labelq": "0.2.0"}).key(0) != plan.key(0)


def test_heap_guard_trims_past_its_slack_and_raises_its_floor(monkeypatch):
    """A loop's resident memory past the floor plus the slack triggers one trim; what the trim cannot
    give back (memory still in use) becomes the floor, so the next steps do not trim again."""
    import labelq.io as lio

    trims = []
    monkeypatch.setattr(lio, "trim_heap", lambda: trims.append(1))
    guard = lio.HeapGuard(slack=16 * 2**20)
    guard.check()
    assert trims == []
    floor = guard.floor
    held = np.ones(64 * 2**20, dtype=np.uint8)  # 64 MB touched and still in use
    guard.check()
    guard.check()
    assert len(trims) == 1 and guard.floor >= floor + 48 * 2**20 and held[-1] == 1


def test_a_cache_root_means_the_same_to_the_python_api_and_the_audit(digits, tmp_path):
    """``cache_dir`` is a cache root, as ``Store.cache_dir``: the folds go to ``folds/`` there, where an audit keeps them."""
    from labelq.store import Store

    store = Store(tmp_path / "store")
    cross_val_pred_probs(digits, model="logreg", n_folds=3, seed=0, cache_dir=store.cache_dir)
    assert store.fold_cache == store.cache_dir / "folds" and len(list(store.fold_cache.glob("*"))) == 3
    assert store.judge_cache == store.cache_dir / "judges.duckdb"
