"""The whole audit in-process: flips found in the published version, auto-fix, user pred_probs, reports."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import flip_labels

from labelq import schema as S
from labelq.errors import InputError
from labelq.ingest import decode_images
from labelq.pipeline import AuditConfig, audit
from labelq.store import Store


@pytest.fixture(scope="module")
def noisy_digits_parquet(tmp_path_factory, digits):
    noisy, flipped = flip_labels(digits["label"].to_numpy(), 10, 0.04, seed=3)
    path = tmp_path_factory.mktemp("src") / "noisy-digits.parquet"
    pq.write_table(digits.drop_columns(["label"]).append_column("label", pa.array(noisy)).replace_schema_metadata(None), path)
    return path, noisy, flipped, digits["label"].to_numpy()


def test_audit_finds_injected_flips_and_keeps_the_original(noisy_digits_parquet, store_dir):
    path, noisy, flipped, clean = noisy_digits_parquet
    result = audit(source=str(path), store=str(store_dir), auto_fix_min_confidence=0.9)
    v = result.version
    assert v.name == "noisy-digits" and v.tag == "v0001"
    rows = v.read()
    assert rows["label"].to_pylist() == noisy.tolist()  # the given labels are untouched
    flagged = np.asarray(rows["is_label_issue"].to_pylist())
    assert (flagged & flipped).sum() / flagged.sum() > 0.8 and (flagged & flipped).sum() / flipped.sum() > 0.8
    corrected = np.asarray(rows["corrected_label"].to_pylist(), dtype=object)
    fixed = np.array([c is not None for c in corrected])
    assert fixed.any() and not (fixed & ~flagged).any()  # only flagged rows are corrected
    assert (corrected[fixed].astype(int) == clean[fixed]).mean() > 0.9  # and the corrections are right
    m = v.manifest_json()
    assert m["auto_fix"] == {"policy": "min-confidence", "min_confidence": 0.9} and m["n_corrected"] == int(fixed.sum())
    assert m["model"] == "cnn" and m["n_folds"] == 5 and m["out_of_sample_accuracy"] > 0.9
    ranks = np.asarray(rows["issue_rank"].to_pylist(), dtype=object)
    assert sorted(ranks[flagged]) == list(range(1, flagged.sum() + 1))
    issues = v.read_table("issues")
    assert issues.num_rows == rows.num_rows and "score_confident_learning" in issues.column_names
    pp = v.read_table("pred_probs")
    assert pp.schema.field("pred_probs").type == pa.list_(pa.float32(), 10)


def test_no_auto_fix_by_default(digits, store_dir):
    result = audit(source="digits", store=str(store_dir), model="logreg", n_folds=3)
    rows = result.version.read()
    assert rows["corrected_label"].null_count == rows.num_rows
    assert result.version.manifest_json()["auto_fix"] is None


def test_report_shows_figures_thumbnails_and_top_issues(noisy_digits_parquet, store_dir):
    path, *_ = noisy_digits_parquet
    result = audit(source=str(path), store=str(store_dir), model="logreg", n_folds=3)
    html = result.report_html.read_text()
    summary = json.loads(result.report_json.read_text())
    assert html.count("data:image/png;base64,") >= 3 + len(summary["top_issues"])  # figures + thumbnails
    shown = len(summary["top_issues"]) + len(summary["outliers"]["rows"])  # one thumbnail per issue and per outlier
    assert 'alt="figure"' in html and html.count('alt="image"') == shown
    assert summary["n_label_issues"] == result.n_label_issues and summary["rows"] == 1797
    assert summary["top_issues"][0]["rank"] == 1 and summary["top_issues"][0]["id"] in html
    assert sum(p["flagged"] for p in summary["per_class"]) == summary["n_label_issues"]


def test_text_report_escapes_the_example_text(tmp_path):
    lines = ["text,label"] + [f"good calm meeting notes {i},ham" for i in range(30)] + [f"win cash prize now {i},spam" for i in range(30)]
    lines.append('"<script>alert(1)</script> win cash prize now",ham')
    (tmp_path / "mail.csv").write_text("\n".join(lines))
    result = audit(source=str(tmp_path / "mail.csv"), store=str(tmp_path / "store"), n_folds=3)
    html = result.report_html.read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html  # the mislabeled spam is in the top issues, shown as text


def test_user_pred_probs_skip_training(digits, tmp_path):
    probs = np.full((1797, 10), 0.01)
    probs[np.arange(1797), digits["label"].to_numpy()] = 0.91
    probs[0] = 0.01
    probs[0, 3] = 0.91  # the model is sure row 0 is a 3, not a 0
    np.save(tmp_path / "p.npy", probs)
    result = audit(source="digits", store=str(tmp_path / "s"), pred_probs=str(tmp_path / "p.npy"))
    rows = result.version.read()
    assert rows["is_label_issue"][0].as_py() and rows["suggested_label"][0].as_py() == 3
    assert result.version.manifest_json()["model"] == "user:p.npy" and result.version.manifest_json()["n_folds"] is None


def test_bad_config_fails_before_anything_is_written(tmp_path):
    with pytest.raises(InputError, match="unknown filter_by"):
        audit(source="digits", store=str(tmp_path / "s"), filter_by="nope")
    with pytest.raises(InputError, match="min-confidence must be a number in \\[0, 1\\]"):
        audit(source="digits", store=str(tmp_path / "s"), auto_fix_min_confidence=1.5)
    with pytest.raises(InputError, match="fewer examples than the 5 folds"):
        (tmp_path / "tiny.csv").write_text("x,label\n" + "\n".join(f"{i},{'a' if i < 10 else 'b'}" for i in range(13)))
        audit(source=str(tmp_path / "tiny.csv"), store=str(tmp_path / "s"))
    with pytest.raises(InputError, match="single class"):
        (tmp_path / "one.csv").write_text("x,label\n" + "\n".join(f"{i},a" for i in range(20)))
        audit(source=str(tmp_path / "one.csv"), store=str(tmp_path / "s"))
    assert not (tmp_path / "s" / "datasets").exists() or not Store(tmp_path / "s").datasets()


def test_images_in_published_version_are_the_source_images(digits, tmp_path):
    result = audit(source="digits", store=str(tmp_path / "s"), model="logreg", n_folds=3)
    np.testing.assert_array_equal(decode_images(result.version.read()["image"]), decode_images(digits["image"]))
    assert S.info_of(result.version.read()).class_names == S.info_of(digits).class_names


def test_fashion_mnist_subset_flips_are_found(tmp_path):
    """The default image pipeline on real Fashion-MNIST rows with 8% injected flips (a subset, for time)."""
    from conftest import load_builtin

    full = load_builtin("fashion-mnist")
    subset = full.filter(pa.compute.equal(full["split"], "test")).slice(0, 3000)
    noisy, flipped = flip_labels(subset["label"].to_numpy(), 10, 0.08, seed=11)
    path = tmp_path / "fmnist.parquet"
    pq.write_table(subset.drop_columns(["label"]).append_column("label", pa.array(noisy)), path)
    result = audit(source=str(path), store=str(tmp_path / "s"))
    rows = result.version.read()
    flagged = np.asarray(rows["is_label_issue"].to_pylist())
    assert S.info_of(rows).class_names[0] == "T-shirt/top"  # class names carried from the Parquet metadata
    from sklearn.metrics import average_precision_score

    # measured: recall .86, precision .38 (2,400 training rows per fold leave confusable classes flagged
    # too, and Fashion-MNIST has real errors), average precision .88 against a base rate of .08
    assert (flagged & flipped).sum() / flipped.sum() > 0.7
    assert (flagged & flipped).sum() / flagged.sum() > 3 * flipped.mean()
    assert average_precision_score(flipped, 1 - rows["label_score"].to_numpy()) > 0.75
    assert result.version.manifest_json()["out_of_sample_accuracy"] > 0.65  # against the noisy labels


def test_dataset_names_are_derived_from_the_source():
    from labelq.pipeline import derive_name

    assert derive_name("digits") == "digits"
    assert derive_name("/data/My Reviews (v2).csv") == "My-Reviews-v2"
    assert derive_name("/data/hf_saved/", "test") == "hf_saved-test"
    assert derive_name("!!!.csv") == "dataset"
    with pytest.raises(InputError, match="invalid dataset name 'bad name'"):
        AuditConfig.from_options(source="digits", name="bad name")


def test_rows_the_choose_judges_say_fit_no_class_are_out_of_distribution(tmp_path):
    """Only multiple-choice judges propose labels: a yes/no judge must not dilute their 'none of these'."""
    from labelq.detect import Detection
    from labelq.pipeline import decide_step
    from labelq.predict import pred_probs_table

    (tmp_path / "j.toml").write_text('[[judge]]\nname = "v"\nbase_url = "http://x/v1"\n\n[[judge]]\nname = "c"\nbase_url = "http://x/v1"\nprompt = "choose"\n')
    cfg = AuditConfig.from_options(source="x.csv", name="x", store=str(tmp_path), judges=str(tmp_path / "j.toml"))
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    pp = pred_probs_table(["a", "b", "c"], probs.astype(np.float32), None, "m")
    det = Detection("confident_learning", np.array([0.9, 0.05, 0.6]), np.array([False, True, False]), np.array([0, 1, 0]))
    votes = pa.Table.from_pylist(
        [
            {"id": "b", "judge": "v", "p_label_correct": 0.1, "proposed_label": None},
            {"id": "b", "judge": "c", "p_label_correct": 0.05, "proposed_label": -1},
            {"id": "c", "judge": "v", "p_label_correct": 0.9, "proposed_label": None},
            {"id": "c", "judge": "c", "p_label_correct": 0.6, "proposed_label": 0},
        ]
    )
    decision, detections, info = decide_step(cfg, pp, det, votes)
    assert [d.detector for d in detections] == ["confident_learning", "llm_judges", "ensemble"] and info["judged_rows"] == 2
    assert decision.is_label_issue.tolist() == [False, True, False]
    from labelq.kinds import audit_kinds

    assert audit_kinds(decision.is_label_issue, decision.no_class).tolist() == ["ok", "out_of_distribution", "ok"]
