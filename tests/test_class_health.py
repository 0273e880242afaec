"""Class imbalance and overlapping classes, on real digits with a planted overlap and a planted rare class."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from conftest import with_labels

from labelq import schema as S
from labelq.detect.class_health import class_health
from labelq.pipeline import AuditConfig, audit


def test_a_planted_overlap_and_a_rare_class_top_the_report(tmp_path, digits):
    rng = np.random.default_rng(0)
    labels = digits[S.LABEL].to_numpy().copy()
    keep = np.flatnonzero(labels != 7)
    keep = np.sort(np.concatenate([keep, np.flatnonzero(labels == 7)[:8]]))  # class 7 keeps 8 of its 179 rows: 0.5% of the rows
    table, labels = digits.take(pa.array(keep)), labels[keep]
    for a, b in ((3, 5), (5, 3)):  # 30% of each of 3 and 5 given the other: the two classes overlap
        rows = np.flatnonzero(labels == a)
        labels[rng.choice(rows, int(0.3 * len(rows)), replace=False)] = b
    pq.write_table(with_labels(table, labels), tmp_path / "d.parquet")
    result = audit(AuditConfig.from_options(str(tmp_path / "d.parquet"), name="d", store=str(tmp_path / "s"), model="logreg", n_folds=3))

    health = json.loads(result.report_json.read_text())["class_health"]
    assert health["imbalanced_classes"] == ["7"]  # below 0.1 / 10 classes = 1% of the rows; the next rarest has 10%
    first = health["overlapping_classes"][0]
    assert {first["class_a"], first["class_b"]} == {"3", "5"} and first["overlapping_rows"] >= 60
    assert first["overlapping_rows"] > 3 * health["overlapping_classes"][1]["overlapping_rows"]
    quality = {p["class_name"]: p["label_quality"] for p in health["per_class"]}
    assert sorted(quality, key=quality.get)[:2] in (["3", "5"], ["5", "3"])  # the two worst labelled classes
    assert 0.85 < health["overall_label_health"] < 0.97  # about 6% of the rows were flipped
    page = result.report_html.read_text()
    assert 'id="overlapping-classes"' in page and "<b>imbalanced</b>" in page


def test_without_an_estimate_only_the_imbalance_is_given():
    out = class_health(np.array([0] * 99 + [1]), None, ["a", "b"])
    assert out["imbalanced_classes"] == ["b"] and "overlapping_classes" not in out and "label_quality" not in out["per_class"][0]


def test_the_formulas_equal_cleanlabs_functions_over_the_same_joint():
    """labelq computes cleanlab.dataset's three summaries in numpy (no cleanlab or pandas import in an audit): the same numbers."""
    from cleanlab.dataset import find_overlapping_classes, overall_label_health_score, rank_classes_by_label_quality

    rng = np.random.default_rng(4)
    joint = rng.dirichlet(np.ones(36) * 0.3).reshape(6, 6) + np.eye(6) * 0.5
    joint /= joint.sum()
    names, n = [f"c{i}" for i in range(6)], 5000
    labels = rng.integers(0, 6, n)
    ours = class_health(labels, joint, names)
    for r in rank_classes_by_label_quality(joint=joint, num_examples=n, class_names=names).to_dict("records"):
        mine = ours["per_class"][int(r["Class Index"])]
        assert mine["label_issues"] == r["Label Issues"] and mine["inverse_label_issues"] == r["Inverse Label Issues"]
        assert np.isclose(mine["label_noise"], r["Label Noise"]) and np.isclose(mine["inverse_label_noise"], r["Inverse Label Noise"])
        assert np.isclose(mine["label_quality"], r["Label Quality Score"])
    theirs = [r for r in find_overlapping_classes(joint=joint, num_examples=n, class_names=names).to_dict("records") if r["Num Overlapping Examples"] > 0]
    assert [(o["class_a"], o["class_b"], o["overlapping_rows"]) for o in ours["overlapping_classes"]] == [
        (r["Class Name A"], r["Class Name B"], r["Num Overlapping Examples"]) for r in theirs[:10]
    ]
    assert np.isclose(ours["overall_label_health"], overall_label_health_score(joint=joint, num_examples=n, verbose=False))
