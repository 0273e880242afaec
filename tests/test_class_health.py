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
