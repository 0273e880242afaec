"""A regression target end to end (issue 31): ingest infers it, cross-validated regressors predict it, the
detector flags planted shifts, the version publishes float values the catalog and ``datasets`` read, the report
shows the residuals, and given predictions work as given class probabilities do. Real data: scikit-learn's
diabetes table (tabular) and the VADER lexicon's words with their mean human rating (text)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import vader_lexicon

from labelq import schema as S
from labelq.detect.regression import detect_regression
from labelq.labelkind import kind_of
from labelq.pipeline import AuditConfig, audit
from labelq.predict import pred_probs_array
from labelq.sql import named_query, run_query
from labelq.store import Store

SHIFTED = 22  # 5% of 442 rows


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    """The diabetes table with 22 targets shifted by 3 standard deviations (up or down), and which ones."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    rng = np.random.default_rng(0)
    rows = rng.choice(len(d.target), SHIFTED, replace=False)
    y = d.target.astype(np.float64).copy()
    y[rows] += rng.choice([-1.0, 1.0], SHIFTED) * 3 * d.target.std()
    path = tmp_path_factory.mktemp("diabetes") / "diabetes.parquet"
    pq.write_table(pa.table({"id": [f"p{i:03d}" for i in range(len(y))], **{n: d.data[:, j] for j, n in enumerate(d.feature_names)}, "target": y}), path)
    truth = np.zeros(len(y), bool)
    truth[rows] = True
    return path, truth


@pytest.fixture(scope="module")
def audited(diabetes, tmp_path_factory):
    path, truth = diabetes
    store = tmp_path_factory.mktemp("store")
    cfg = AuditConfig.from_options(str(path), store=str(store), label_column="target", model="ridge", data_checks=False)
    return audit(cfg), store, truth


def test_the_target_is_inferred_and_predicted(audited):
    result, store, _ = audited
    version = result.version
    manifest = version.manifest()
    assert manifest.kind_name == "regression" and manifest.class_names == ["target"]
    rows = version.read()
    assert rows.schema.field(S.LABEL).type == pa.float64() and rows.schema.field(S.SUGGESTED_LABEL).type == pa.float64()
    pred = pred_probs_array(version.read_table("pred_probs"))
    assert pred.shape == (442, 1)
    assert manifest.audit.model == "ridge" and 0.3 < manifest.audit.out_of_sample_accuracy < 0.6  # R², on values with 5% shifted
    assert manifest.audit.reliability["reliable"] and "R²" in manifest.audit.reliability["compared"]


def test_flags_are_the_detectors_and_find_the_shifts(audited):
    """The published flags and scores are ``detect_regression``'s on the published predictions; they find the shifts."""
    result, _, truth = audited
    rows = result.version.read()
    given, pred = rows[S.LABEL].to_numpy(), pred_probs_array(result.version.read_table("pred_probs"))[:, 0].astype(np.float64)
    found = detect_regression(given, pred)
    flags = rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)
    np.testing.assert_array_equal(flags, found.is_issue)
    np.testing.assert_allclose(rows[S.LABEL_SCORE].to_numpy(), found.score)
    np.testing.assert_allclose(rows[S.SUGGESTED_LABEL].to_numpy(), pred)
    hits = int((flags & truth).sum())
    assert hits >= 18 and flags.sum() <= 26, (hits, int(flags.sum()))  # ridge: 20 of 22 shifts found, 1 other row flagged (bench/regression.py)
    ranks = rows[S.ISSUE_RANK].to_numpy(zero_copy_only=False)
    assert sorted(ranks[flags].astype(int)) == list(range(1, int(flags.sum()) + 1))


def test_catalog_report_and_history(audited):
    result, store, _ = audited
    s = Store(store)
    name = result.version.name
    top = named_query(s, name, "top_issues", version=1, limit=5).to_pylist()
    assert list(top[0]) == ["issue_rank", "id", "given_value", "suggested_value", "residual", "label_score", "split"]
    issues = run_query(s, name, "SELECT given_value, suggested_value, residual FROM issues").to_pylist()
    assert all(abs(r["given_value"] - r["suggested_value"] - r["residual"]) < 1e-9 for r in issues)
    ranges = run_query(s, name, "SELECT quintile, n_rows, n_flagged FROM class_noise ORDER BY quintile").to_pylist()
    assert [r["quintile"] for r in ranges] == [1, 2, 3, 4, 5] and sum(r["n_rows"] for r in ranges) == 442
    assert sum(r["n_flagged"] for r in ranges) == len(issues)
    page = result.report_html.read_text()
    assert "target (a number a row, regression)" in page and "By range of target" in page and "R² of always answering the mean" in page
    assert "confident learning" not in page.split("Figures")[0]  # the mixture estimates, not confident learning
    report = json.loads(result.report_json.read_text())
    assert report["label_kind"] == "regression" and report["top_issues"][0]["given_label"] is not None
    assert result.history.rows == 442 and result.history.class_share == [1.0]


def test_export_loads_as_floats_in_datasets(audited, tmp_path):
    from datasets import Dataset

    from labelq.relabel.export import export_training

    result, _, _ = audited
    manifest = export_training(result.version, tmp_path / "out", policy="drop-issues")
    assert manifest["dropped"] == result.n_label_issues and manifest["rows_out"] == 442 - result.n_label_issues
    d = Dataset.from_parquet(str(tmp_path / "out" / "all.parquet"))
    assert d.features["label"].dtype == "float64" and d.features["original_label"].dtype == "float64"


def test_given_predictions_and_the_fold_cache(diabetes, audited, tmp_path):
    """Given predictions (negative ones are values, not bad probabilities) give the flags the detector gives on them;
    a second audit of the same data reuses every fold."""
    path, _ = diabetes
    result, store, _ = audited
    pred = pred_probs_array(result.version.read_table("pred_probs"))[:, 0].astype(np.float64) - 500.0  # every prediction negative, the target shifted the same
    table = pq.read_table(path)
    shifted = table.set_column(table.column_names.index("target"), "target", pa.array(table["target"].to_numpy() - 500.0))
    pq.write_table(shifted, tmp_path / "shifted.parquet")
    np.save(tmp_path / "pred.npy", pred)
    given = audit(
        AuditConfig.from_options(str(tmp_path / "shifted.parquet"), store=str(tmp_path / "s"), label_column="target", pred_probs=str(tmp_path / "pred.npy"))
    )
    rows = given.version.read()
    np.testing.assert_array_equal(rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False), detect_regression(shifted["target"].to_numpy(), pred).is_issue)
    again = audit(AuditConfig.from_options(str(path), store=str(store), label_column="target", model="ridge", data_checks=False))
    assert again.history.folds_cached == 5


def test_models_of_the_other_task_are_refused(diabetes, tmp_path):
    from labelq.errors import InputError

    path, _ = diabetes
    with pytest.raises(InputError, match="model 'hgb' learns classes.*target"):
        audit(AuditConfig.from_options(str(path), store=str(tmp_path / "s"), label_column="target", model="hgb"))
    with pytest.raises(InputError, match="model 'ridge' learns regression"):
        audit(AuditConfig.from_options("digits", store=str(tmp_path / "s"), model="ridge"))
    with pytest.raises(InputError, match="LLM judges vote on classes"):
        audit(AuditConfig.from_options(str(path), store=str(tmp_path / "s"), label_column="target", judges="qwen"))


def test_text_target_the_vader_lexicon(tmp_path):
    """Words with the mean of 10 people's sentiment ratings: TF-IDF finds no word shared by two single-word texts and
    the error says which model reads them; pretrained embeddings with ridge find shifted ratings."""
    pytest.importorskip("sentence_transformers")
    words, means, _ = vader_lexicon()
    words, y = words[::5][:1200], means[::5][:1200].copy()  # every fifth word
    rng = np.random.default_rng(1)
    planted = rng.choice(len(y), 60, replace=False)
    y[planted] = np.where(y[planted] > 0, -3.0, 3.0)  # the sign turned over, far out: a rating for the wrong word
    pq.write_table(pa.table({"word": words, "rating": y}), tmp_path / "lexicon.parquet")
    from labelq.errors import InputError

    opts = dict(store=str(tmp_path / "s"), label_column="rating", text_column="word", data_checks=False)
    with pytest.raises(InputError, match="embed-ridge"):
        audit(AuditConfig.from_options(str(tmp_path / "lexicon.parquet"), n_folds=3, **opts))
    result = audit(AuditConfig.from_options(str(tmp_path / "lexicon.parquet"), model="embed-ridge", **opts))
    rows = result.version.read()
    flags = rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)
    truth = np.zeros(len(y), bool)
    truth[planted] = True
    assert (flags & truth).sum() >= 40 and (flags & ~truth).sum() <= 30, (int((flags & truth).sum()), int((flags & ~truth).sum()))


def test_review_and_corrections_with_a_guarantee(diabetes, tmp_path):
    """Sample -> review -> relabel --target-precision on the shifted diabetes values: the reviewers give the true values
    (the table before shifting) on a random sample of flagged rows, in a CSV and in Label Studio's JSON; a correction
    is right when the given value was more than the tolerance from the truth; the certified rule's corrections are
    right at least as often as it promises, against the truth of every row."""
    import csv

    from sklearn.datasets import load_diabetes

    from labelq.relabel.review import apply_reviews, export_review
    from labelq.relabel.run import RelabelConfig, relabel
    from labelq.relabel.samples import draw_sample, save_sample

    path, shifted = diabetes
    true = load_diabetes().target.astype(np.float64)
    store = Store(tmp_path / "s")
    audit(AuditConfig.from_options(str(path), name="db", store=str(store.root), label_column="target", model="ridge", data_checks=False))
    first = relabel(RelabelConfig(name="db", store=str(store.root)))  # no guarantee: the mixture's probability >= 0.9
    assert first.version.manifest().relabel.guarantee is None
    sample = draw_sample(store, first.version, 12, seed=3)
    out, n = export_review(first.version, tmp_path / "sample.csv", fmt="csv", sample=sample)
    save_sample(store, sample)
    ls, _ = export_review(first.version, tmp_path / "tasks.json", fmt="label-studio", sample=sample)
    task = json.loads(ls.read_text())[0]
    assert task["predictions"][0]["result"][0]["type"] == "number" and "<Number" in (tmp_path / "tasks.json.label_config.xml").read_text()
    rows = list(csv.DictReader(open(out)))
    for r in rows:
        r["review_labels"], r["reviewer"] = str(float(true[int(r["id"][1:])])), "ann"
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    reviewed = apply_reviews("db", out, store=str(store.root))
    assert reviewed.n_reviews == n == 12
    result = relabel(RelabelConfig(name="db", store=str(store.root), target_precision=0.75, confidence=0.9, tolerance="20"))
    rule = result.version.manifest().relabel.guarantee
    assert rule["unit"] == "values" and rule["score"] == "p_wrong" and rule["threshold"] is not None, rule
    got = result.version.read()
    source = np.asarray(got[S.LABEL_SOURCE].to_pylist(), dtype=object)
    by_rule = source == "relabel"
    given = got[S.LABEL].to_numpy()
    assert by_rule.sum() >= 5 and (np.abs(given[by_rule] - true[by_rule]) > 20).mean() >= 0.75  # right against the truth, not only the sample
    reviewed_rows = source == "review"
    corrected = got[S.CORRECTED_LABEL].to_numpy(zero_copy_only=False).astype(np.float64)
    kept = reviewed_rows & ~shifted
    assert np.isnan(corrected[kept]).all() and np.allclose(corrected[reviewed_rows & shifted], true[reviewed_rows & shifted])
    with pytest.raises(Exception, match="tolerance 'abc'"):
        RelabelConfig(name="db", tolerance="abc")


def test_benchmark_report_scores_values(diabetes, tmp_path):
    """The corrected-test-set benchmark of a regression target: R², MAE and RMSE of each model on the original and the
    corrected values, equal to scikit-learn's, with bootstrap intervals around them; a model that predicts the truth
    gains on the corrected values."""
    from sklearn.datasets import load_diabetes
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    from labelq.benchmark.report import write_benchmark_report

    path, shifted = diabetes
    true = load_diabetes().target.astype(np.float64)
    result = audit(AuditConfig.from_options(str(path), name="db", store=str(tmp_path / "s"), label_column="target", model="ridge", auto_fix_min_confidence=0.9))
    version = result.version
    rows = version.read()
    assert rows[S.CORRECTED_LABEL].null_count < rows.num_rows  # the auto-fix corrected some values
    ids = rows[S.ID].to_pylist()
    rng = np.random.default_rng(0)
    models = {"near-truth": true + rng.normal(0, 20, len(true)), "flat": np.full(len(true), true.mean())}
    table = pa.table({"id": ids * 2, "model": ["near-truth"] * len(ids) + ["flat"] * len(ids), "predicted_label": np.concatenate(list(models.values()))})
    paths = write_benchmark_report(version, table, n_boot=200)
    report = json.loads(paths["json"].read_text())
    given, corrected = rows[S.LABEL].to_numpy(), kind_of(rows).effective(rows)
    for r in report["models"]:
        pred = models[r["model"]]
        assert abs(r["original"] - r2_score(given, pred)) < 1e-9 and abs(r["corrected"] - r2_score(corrected, pred)) < 1e-9
        assert abs(r["mae_original"] - mean_absolute_error(given, pred)) < 1e-9
        assert abs(r["rmse_corrected"] - np.sqrt(mean_squared_error(corrected, pred))) < 1e-9
        assert r["original_lo"] <= r["original"] <= r["original_hi"] and r["mae_corrected_lo"] <= r["mae_corrected"] <= r["mae_corrected_hi"]
    near = next(r for r in report["models"] if r["model"] == "near-truth")
    assert near["corrected"] > near["original"] and near["mae_corrected"] < near["mae_original"]
    assert report["swaps"] == [] and report["prevalence_curve"] == {}
    page = paths["html"].read_text()
    assert "R², MAE and RMSE per model" in page and "No prevalence curve" in page
