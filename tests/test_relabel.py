"""Re-labeling: issue kinds, corrections, label sets and soft labels published as a new version; the
human-review loop; training exports. Real digits audited into a real store, real DuckDB and datasets."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import flip_labels, with_labels

from labelq import schema as S
from labelq.errors import InputError
from labelq.relabel import KindRule, RelabelConfig, classify, noise_aware, relabel
from labelq.relabel.export import export_training
from labelq.relabel.review import NONE_OF_THESE, apply_reviews, export_review, needs_review
from labelq.sql import run_query
from labelq.store import Store


@pytest.fixture(scope="module")
def audited(tmp_path_factory, digits):
    """A store holding one audit (v0001) of digits with 4% flipped labels; returns (store root, true labels)."""
    from labelq.pipeline import audit

    root = tmp_path_factory.mktemp("relabel") / "store"
    truth = digits[S.LABEL].to_numpy()
    noisy, _ = flip_labels(truth, 10, 0.04, seed=3)
    path = root.parent / "noisy.parquet"
    pq.write_table(with_labels(digits, noisy), path)
    audit(source=str(path), name="digits", store=str(root))
    return root, truth


@pytest.fixture
def store(audited, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(audited[0], root)
    return Store(root)


def test_kind_rule_on_constructed_evidence():
    probs = np.array([[0.02, 0.95, 0.03], [0.45, 0.5, 0.05], [0.4, 0.3, 0.3], [0.9, 0.05, 0.05], [0.1, 0.8, 0.1]])
    labels = np.array([0, 0, 0, 0, 0])
    flagged = np.array([True, True, True, False, True])
    k = classify(probs, labels, flagged)
    assert k.kind.tolist() == ["wrong_label", "multi_label", "ambiguous", "ok", "ambiguous"]
    assert k.correction.tolist() == [1, -1, -1, -1, -1]
    # judges: 'none fits' wins; a different proposal makes a confident fix ambiguous; acceptance + same proposal = both fit
    k = classify(
        probs,
        labels,
        flagged,
        no_class=np.array([0, 0, 1, 0, 0], bool),
        judge_choice=np.array([2, -2, -2, -2, 1]),
        judge_accepts=np.array([0, 0, 0, 0, 1], bool),
    )
    assert k.kind.tolist() == ["ambiguous", "multi_label", "out_of_distribution", "ok", "multi_label"]
    assert k.correction.tolist() == [-1, -1, -1, -1, -1]
    with pytest.raises(InputError, match="fix_confidence"):
        KindRule(fix_confidence=1.5)


def test_noise_aware_posterior_weighs_the_given_label():
    probs = np.array([[0.01, 0.99], [0.5, 0.5]])
    labels = np.array([0, 0])
    nm = np.array([[0.99, 0.01], [0.01, 0.99]])  # P(given i | true j): labels are right 99% of the time
    post = noise_aware(probs, labels, nm)
    assert np.allclose(post.sum(1), 1)
    assert 0.4 < post[0, 0] < 0.6  # 99:1 model evidence vs 99:1 label evidence
    assert post[1, 0] > 0.95


def test_relabel_publishes_a_new_version_and_keeps_the_original(store, audited):
    truth = audited[1]
    parent = store.version("digits")
    before = {p.name: p.read_bytes() for p in parent.path.rglob("*") if p.is_file()}
    result = relabel(name="digits", store=str(store.root), coverage=0.95)
    assert result.parent.number == 1 and result.version.number == 2
    assert {p.name: p.read_bytes() for p in parent.path.rglob("*") if p.is_file()} == before  # parent untouched
    rows = result.version.read()
    m = result.version.manifest_json()
    assert m["parent_version"] == 1 and m["derived_from"] == "v0001" and m["relabel"]["coverage_target"] == 0.95
    assert rows[S.LABEL].to_pylist() == parent.read()[S.LABEL].to_pylist()  # the given label stays
    assert m["content_hash"] == parent.manifest_json()["content_hash"]
    kind = np.array(rows[S.ISSUE_KIND].to_pylist())
    flagged = rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)
    assert set(kind[~flagged]) == {"ok"} and "ok" not in set(kind[flagged])
    corrected = rows[S.CORRECTED_LABEL].fill_null(-1).to_numpy()
    assert ((corrected >= 0) == (kind == "wrong_label")).all()
    fixed = corrected >= 0
    assert fixed.sum() >= 20 and (corrected[fixed] == truth[fixed]).mean() >= 0.9  # corrections restore the true labels
    assert set(rows[S.LABEL_SOURCE].drop_null().to_pylist()) == {"relabel"}
    # label sets: measured coverage near the target, every set non-empty; soft labels are distributions
    assert m["relabel"]["coverage_measured"] >= 0.93
    sets = rows[S.LABELS].to_pylist()
    assert all(len(s) >= 1 for s in sets)
    soft = np.array(rows[S.SOFT_LABEL].to_pylist())
    assert soft.shape == (rows.num_rows, 10) and np.allclose(soft.sum(1), 1, atol=1e-5)
    current = np.where(fixed, corrected, rows[S.LABEL].to_numpy())
    assert (soft.argmax(1) == current).mean() > 0.99
    # the catalog and Hugging Face datasets read the new columns
    got = run_query(
        store,
        "digits",
        "SELECT version, count(*) FILTER (WHERE len(labels) > 1) AS multi, count(*) FILTER (WHERE label_source = 'relabel') AS fixed FROM rows GROUP BY version ORDER BY version",
    ).to_pylist()
    assert got[0] == {"version": 1, "multi": 0, "fixed": 0} and got[1]["fixed"] == int(fixed.sum())
    import datasets

    ds = datasets.load_dataset("parquet", data_files=result.version.data_glob, split="train")
    assert ds.features[S.LABELS].feature.names == [str(i) for i in range(10)]
    # the version's report has a re-labeling section
    report = json.loads((result.version.path.parent / "reports" / "v0002.json").read_text())
    assert report["relabel"]["kinds"]["wrong_label"] == int(fixed.sum()) and report["relabel"]["coverage_target"] == 0.95
    assert "<h2>Re-labeling</h2>" in (result.version.path.parent / "reports" / "v0002.html").read_text()


def test_relabel_options_and_errors(store):
    r = relabel(name="digits", store=str(store.root), class_conditional=True, score="aps", noise_aware=True, calibration="all")
    assert r.version.manifest_json()["relabel"]["class_conditional"] is True
    with pytest.raises(InputError, match="no row has a single reviewed label"):
        relabel(name="digits", store=str(store.root), calibration="reviewed")
    with pytest.raises(InputError, match="calibration"):
        RelabelConfig(name="digits", calibration="everything")
    assert [v.number for v in store.versions("digits")] == [1, 2]


def _answer_label_studio(tasks: list[dict], answers: list[list[str]]) -> list[dict]:
    """What Label Studio's JSON export holds after a person answered the imported tasks."""
    out = []
    for i, (task, choices) in enumerate(zip(tasks, answers)):
        ann = {
            "id": 100 + i,
            "completed_by": {"id": 7, "email": "rev@example.org"},
            "was_cancelled": False,
            "created_at": "2026-11-20T09:00:00.000000Z",
            "updated_at": f"2026-11-20T09:0{i % 10}:00.000000Z",
            "lead_time": 3.2,
            "result": [{"id": "r1", "from_name": "label", "to_name": "item", "type": "choices", "origin": "manual", "value": {"choices": choices}}],
        }
        out.append({"id": i + 1, "data": task["data"], "annotations": [ann] if choices else [], "predictions": task["predictions"]})
    return out


def test_review_round_trip_through_label_studio_json(store, tmp_path):
    relabel(name="digits", store=str(store.root))
    v = store.version("digits")
    path, n = export_review(v, tmp_path / "tasks.json", all_flagged=True)
    tasks = json.loads(path.read_text())
    assert n == len(tasks) == int(v.read()[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False).sum()) and n >= 4
    assert tasks[0]["data"]["image"].startswith("data:image/png;base64,")
    assert tasks[0]["predictions"][0]["result"][0]["value"]["choices"]
    assert '<Choice value="None of these"/>' in (tmp_path / "tasks.json.label_config.xml").read_text()
    given = [t["data"]["given_label"] for t in tasks]
    other = [str((int(g) + 1) % 10) for g in given]
    answers = [[given[0]], [other[1]], [given[2], other[2]], [NONE_OF_THESE]] + [[] for _ in tasks[4:]]
    exported = tmp_path / "export.json"
    exported.write_text(json.dumps(_answer_label_studio(tasks, answers)))
    result = apply_reviews("digits", exported, str(store.root))
    assert result.n_reviews == 4 and result.parent.number == v.number and result.version.number == v.number + 1
    rows = {r[S.ID]: r for r in result.version.read().to_pylist()}
    ids = [t["data"]["labelq_id"] for t in tasks]
    r0, r1, r2, r3 = (rows[i] for i in ids[:4])
    assert r0[S.ISSUE_KIND] == "ok" and r0[S.CORRECTED_LABEL] is None and r0[S.LABELS] == [int(given[0])]
    assert r1[S.ISSUE_KIND] == "wrong_label" and r1[S.CORRECTED_LABEL] == int(other[1])
    assert r2[S.ISSUE_KIND] == "multi_label" and r2[S.LABELS] == sorted([int(given[2]), int(other[2])]) and r2[S.CORRECTED_LABEL] is None
    assert np.allclose(sorted(r2[S.SOFT_LABEL])[-2:], [0.5, 0.5])
    assert r3[S.ISSUE_KIND] == "out_of_distribution" and r3[S.LABELS] == []
    assert {r[S.REVIEWER] for r in (r0, r1, r2, r3)} == {"rev@example.org"} and r0[S.LABEL_SOURCE] == "review"
    assert r0[S.REVIEWED_AT].isoformat().startswith("2026-11-20T09:00")
    assert result.version.manifest_json()["review"]["reviewers"] == ["rev@example.org"]
    # a later re-label keeps the person's answers; reviewed rows leave the review queue
    again = relabel(name="digits", store=str(store.root)).version.read().to_pylist()
    again = {r[S.ID]: r for r in again}
    assert again[ids[1]][S.CORRECTED_LABEL] == int(other[1]) and again[ids[1]][S.LABEL_SOURCE] == "review"
    assert again[ids[3]][S.ISSUE_KIND] == "out_of_distribution"
    queue = needs_review(store.version("digits").read(), all_flagged=True)
    assert not set(ids[:4]) & {store.version("digits").read()[S.ID][int(i)].as_py() for i in queue}


def test_review_round_trip_through_csv(store, tmp_path):
    v = store.version("digits")  # not re-labeled: every flagged row without a correction is queued
    path, n = export_review(v, tmp_path / "sheet.csv", fmt="csv", limit=3)
    lines = list(csv.DictReader(open(path)))
    assert n == 3 and (tmp_path / lines[0]["item"]).is_file()
    lines[0].update(review_labels=lines[0]["suggestion"], reviewer="ann", reviewed_at="2026-11-21T12:00:00Z")
    lines[1].update(review_labels=lines[1]["given_label"], reviewer="bob")
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(lines[0]))
        w.writeheader()
        w.writerows(lines)
    result = apply_reviews("digits", path, str(store.root))
    assert result.n_reviews == 2 and result.changed == (1 if lines[0]["suggestion"] != lines[0]["given_label"] else 0)
    rows = {r[S.ID]: r for r in result.version.read().to_pylist()}
    assert rows[lines[0]["id"]][S.REVIEWER] == "ann" and rows[lines[1]["id"]][S.ISSUE_KIND] == "ok"
    assert result.version.manifest_json()["review"]["skipped"] == 1


@pytest.mark.parametrize(
    "problem, match",
    [
        ("unknown_id", "unknown id 'no-such-row'"),
        ("bad_label", r"labels \['cat'\] are not classes"),
        ("old_version", "is a review of \\['v0001'\\] but the latest version"),
        ("other_dataset", "reviews dataset"),
        ("duplicate", "reviewed twice"),
        ("no_reviewer", "no reviewer"),
        ("bad_time", "not an ISO 8601 time"),
        ("nothing", "holds no answered reviews"),
        ("not_json", "not a Label Studio JSON export"),
    ],
)
def test_bad_review_files_are_refused_and_change_nothing(store, tmp_path, problem, match):
    v = store.version("digits")
    path, _ = export_review(v, tmp_path / "sheet.csv", fmt="csv", limit=2)
    lines = list(csv.DictReader(open(path)))
    for line in lines:
        line.update(review_labels=line["suggestion"], reviewer="ann")
    if problem == "unknown_id":
        lines[1]["id"] = "no-such-row"
    elif problem == "bad_label":
        lines[1]["review_labels"] = "cat"
    elif problem == "old_version":
        relabel(name="digits", store=str(store.root))
    elif problem == "other_dataset":
        lines[0]["labelq_dataset"] = "mnist"
    elif problem == "duplicate":
        lines[1]["id"] = lines[0]["id"]
    elif problem == "no_reviewer":
        lines[1]["reviewer"] = ""
    elif problem == "bad_time":
        lines[1]["reviewed_at"] = "yesterday"
    elif problem == "nothing":
        for line in lines:
            line["review_labels"] = ""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(lines[0]))
        w.writeheader()
        w.writerows(lines)
    if problem == "not_json":
        path = tmp_path / "export.json"
        path.write_text("{not json")
    n_before = len(store.versions("digits"))
    with pytest.raises(InputError, match=match):
        apply_reviews("digits", path, str(store.root))
    assert len(store.versions("digits")) == n_before
    assert not list(store.dataset_dir("digits").glob(".tmp-*"))


def test_training_exports_follow_the_policy(store, tmp_path):
    import datasets

    with pytest.raises(InputError, match="run `labelq relabel NAME` first"):
        export_training(store.version("digits"), tmp_path / "soft", "soft")
    assert not (tmp_path / "soft").exists()
    v = relabel(name="digits", store=str(store.root)).version
    rows = v.read()
    n = rows.num_rows
    flagged = rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)
    fixed = rows[S.CORRECTED_LABEL].is_valid().to_numpy(zero_copy_only=False)
    got = {p: export_training(v, tmp_path / p, p) for p in ("keep", "auto-fix", "drop-issues", "soft", "multi")}
    assert got["keep"]["rows_out"] == n and got["keep"]["relabeled"] == 0
    assert got["auto-fix"]["rows_out"] == n and got["auto-fix"]["relabeled"] == int(fixed.sum())
    assert got["drop-issues"]["rows_out"] == n - int((flagged & ~fixed).sum())
    for policy, extra in (("soft", S.SOFT_LABEL), ("multi", S.LABELS), ("auto-fix", None)):
        ds = datasets.load_dataset(str(tmp_path / policy), split="train")
        assert ds.features[S.LABEL].names == [str(i) for i in range(10)] and ds.features[S.ORIGINAL_LABEL].names
        if extra:
            assert extra in ds.column_names
    ds = datasets.load_dataset(str(tmp_path / "auto-fix"), split="train").to_pandas()
    assert (ds[S.LABEL] != ds[S.ORIGINAL_LABEL]).sum() == int(fixed.sum())
    with pytest.raises(InputError, match="exists and is not empty"):
        export_training(v, tmp_path / "keep", "keep")
    with pytest.raises(InputError, match="unknown export policy"):
        export_training(v, tmp_path / "x", "best")


def test_cli_relabel_review_export(store, tmp_path, prefect_harness):
    from labelq.cli import main

    runner = CliRunner()
    root = str(store.root)
    r = runner.invoke(main, ["relabel", "digits", "--store", root, "--coverage", "0.9"])
    assert r.exit_code == 0, r.output
    assert "Published digits v0002 (re-labeled v0001)" in r.output and "measured" in r.output
    assert store.version("digits").manifest_json()["run"]["flow_run_id"]  # ran as a Prefect flow
    r = runner.invoke(main, ["review", "export", "digits", "--store", root, "--all-flagged", "-o", str(tmp_path / "t.json")])
    assert r.exit_code == 0 and "to review" in r.output, r.output
    tasks = json.loads((tmp_path / "t.json").read_text())
    (tmp_path / "e.json").write_text(json.dumps(_answer_label_studio(tasks, [[tasks[0]["data"]["given_label"]]] + [[] for _ in tasks[1:]])))
    r = runner.invoke(main, ["review", "import", "digits", str(tmp_path / "e.json"), "--store", root])
    assert r.exit_code == 0 and "1 reviews" in r.output, r.output
    r = runner.invoke(main, ["review", "import", "digits", str(tmp_path / "e.json"), "--store", root])
    assert r.exit_code == 2 and "error:" in r.output and "fix:" in r.output  # now a review of an old version
    r = runner.invoke(main, ["export", "digits", "--store", root, "--policy", "multi", "-o", str(tmp_path / "out")])
    assert r.exit_code == 0 and "(multi)" in r.output, r.output
    assert (tmp_path / "out" / "export.json").is_file()


def test_a_review_is_not_published_over_a_newer_version(store, tmp_path):
    """The version check is repeated under the store's lock: a version published between reading a
    review and publishing it makes the review fail, with nothing written."""
    from labelq.errors import VersionConflictError
    from labelq.relabel import review

    path, _ = export_review(store.version("digits"), tmp_path / "sheet.csv", fmt="csv", limit=1)
    lines = list(csv.DictReader(open(path)))
    lines[0].update(review_labels=lines[0]["given_label"], reviewer="ann")
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(lines[0]))
        w.writeheader()
        w.writerows(lines)
    reviews = review.read_step("digits", str(path), str(store.root))
    table, manifest, parent = review.apply_step(reviews, str(store.root))
    relabel(name="digits", store=str(store.root))  # someone else publishes v0002 meanwhile
    with pytest.raises(VersionConflictError, match="no longer the latest"):
        review.publish_step(reviews, parent, table, manifest, str(store.root))
    assert [v.number for v in store.versions("digits")] == [1, 2]


def test_the_effective_label_has_one_meaning_in_python_and_sql(store):
    v = relabel(name="digits", store=str(store.root)).version
    rows = v.read()
    given, corrected = rows[S.LABEL].to_numpy(), rows[S.CORRECTED_LABEL].to_pylist()
    expected = [g if c is None else c for g, c in zip(given.tolist(), corrected)]
    assert any(c is not None and c != g for g, c in zip(given.tolist(), corrected))  # some rows are corrected
    assert S.effective_labels(rows).tolist() == expected
    sql = run_query(store, "digits", f"SELECT id, effective_label FROM rows WHERE version = {v.number}")
    by_id = dict(zip(sql["id"].to_pylist(), sql["effective_label"].to_pylist()))
    assert [by_id[i] for i in rows[S.ID].to_pylist()] == expected
    without = rows.drop_columns([S.CORRECTED_LABEL])
    assert S.effective_labels(without).tolist() == given.tolist()  # a table without corrections: the given labels
    replaced = S.replace_columns(rows, {S.LABEL: pa.array(np.zeros(rows.num_rows, np.int64)), "extra": pa.array(np.ones(rows.num_rows))})
    assert replaced.column_names == [*rows.column_names, "extra"] and replaced[S.LABEL].to_pylist() == [0] * rows.num_rows
    assert S.info_of(replaced) == S.info_of(rows)  # the metadata travels


def test_a_reviewer_s_answer_gives_one_kind():
    from labelq.kinds import audit_kinds, review_kind

    assert [review_kind(c, 2) for c in ([], [2], [3], [2, 3], [3, 4])] == ["out_of_distribution", "ok", "wrong_label", "multi_label", "multi_label"]
    flagged, no_class = np.array([True, True, False]), np.array([False, True, True])
    assert audit_kinds(flagged, no_class).tolist() == ["wrong_label", "out_of_distribution", "ok"]  # unflagged rows stay ok


def test_two_classes_are_never_both_without_the_judges(tmp_path):
    """With two classes the pair of labels holds all the mass, so 'both fit' needs the judges' word: on
    constructed evidence, and re-labeling scikit-learn's breast-cancer rows (569, two classes) with 10% of
    the labels flipped, no row is multi_label (before: every flagged row with both probabilities >= 0.25)."""
    probs = np.array([[0.4, 0.6], [0.05, 0.95], [0.7, 0.3]])
    labels, flagged = np.array([0, 0, 0]), np.array([True, True, True])
    assert classify(probs, labels, flagged).kind.tolist() == ["ambiguous", "wrong_label", "ambiguous"]
    judged = classify(probs, labels, flagged, judge_choice=np.array([1, 1, 1]), judge_accepts=np.array([True, False, False]))
    assert judged.kind.tolist() == ["multi_label", "wrong_label", "ambiguous"]

    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import load_breast_cancer

    import labelq

    data = load_breast_cancer()
    y = data.target.copy()
    flip = np.random.default_rng(0).choice(len(y), len(y) // 10, replace=False)
    y[flip] = 1 - y[flip]
    cols = {f"f{j}": data.data[:, j] for j in range(data.data.shape[1])}
    pq.write_table(pa.table({"id": [f"c{i}" for i in range(len(y))], "label": y.astype(np.int64), **cols}), tmp_path / "cancer.parquet")
    audited = labelq.audit(source=str(tmp_path / "cancer.parquet"), store=str(tmp_path / "s"), model="logreg", data_checks=False)
    assert audited.n_label_issues > 20
    result = labelq.relabel(name="cancer", store=str(tmp_path / "s"))
    kinds = result.version.read(columns=[S.ISSUE_KIND])[S.ISSUE_KIND].to_pylist()
    assert "multi_label" not in kinds and kinds.count("wrong_label") + kinds.count("ambiguous") == audited.n_label_issues
