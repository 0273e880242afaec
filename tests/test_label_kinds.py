"""Kinds of label as registered strategies (``labelq.labelkind``): a third kind, defined only in this file,
audits, publishes, re-labels, reports and is queried with no change to labelq.

The toy kind, ``binary_tags``, stores tag lists as the built-in ``tags`` kind does, but flags them its own
way: every tag is its own two-class problem (the row has it or not), given to cleanlab's single-label
``find_label_issues`` with ``[1 - p, p]`` as pred_probs, and a row's score is its worst tag's
self-confidence. Everything else (folds, one-vs-rest models, the decision, SQL, report, relabel) it
inherits.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from test_multilabel import debtags_sample

import labelq
from labelq import schema as S
from labelq.detect import Detection
from labelq.errors import InputError
from labelq.label_kinds.tags import TagSets
from labelq.labelkind import KINDS, kind_named, kind_of, register
from labelq.pipeline import AuditConfig
from labelq.sql import named_query, run_query
from labelq.store import Store


def flag_binary_tags(tags: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(N, K)`` flagged tags and ``(N,)`` scores: cleanlab on each tag as a two-class problem."""
    from cleanlab.filter import find_label_issues

    flagged = np.zeros(tags.shape, dtype=bool)
    for t in np.flatnonzero(tags.any(axis=0) & ~tags.all(axis=0)):
        p = probs[:, t].astype(np.float64)
        flagged[:, t] = find_label_issues(tags[:, t].astype(int), np.column_stack([1 - p, p]), filter_by="prune_by_noise_rate")
    self_confidence = np.where(tags, probs, 1 - probs)
    return flagged, self_confidence.min(axis=1)


class BinaryTags(TagSets):
    name = "binary_tags"
    key_parts = {"binary_tags": True}

    def detect(self, options, ctx, client=None) -> Detection:
        labels = ctx.labels
        flagged, score = flag_binary_tags(labels, np.asarray(ctx.pred_probs))
        missing, extra = flagged & ~labels, flagged & labels
        return Detection(
            "binary_per_tag",
            np.clip(score, 0.0, 1.0),
            flagged.any(axis=1),
            labels ^ flagged,
            {"missing": missing, "extra": extra, "class_error_rate": flagged.mean(axis=0).tolist()},
        )


@pytest.fixture
def toy_kind():
    kind = register(BinaryTags())
    yield kind
    KINDS.pop(kind.name, None)


@pytest.fixture(scope="module")
def tags_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("kinds") / "debtags.parquet"
    import pyarrow.parquet as pq

    pq.write_table(debtags_sample(1500, seed=3), path)
    return path


def test_a_kind_defined_in_a_test_audits_publishes_relabels_and_is_queried(toy_kind, tags_file, tmp_path):
    store = tmp_path / "store"
    options = AuditConfig.from_options(str(tags_file), name="pkgs", store=str(store), label_column="tags", n_folds=3, data_checks=False)
    result = labelq.audit(replace(options, ingest=replace(options.ingest, label_kind="binary_tags")))
    version = result.version
    manifest = version.manifest()
    assert kind_of(manifest) is toy_kind and version.manifest_json()["label_kind"] == "binary_tags"
    assert manifest.audit.detectors == ["binary_per_tag"]

    # what was published is the toy detector's verdict on the published pred_probs
    rows = version.read()
    probs = np.stack(version.read_table("pred_probs")["pred_probs"].to_numpy(zero_copy_only=False))
    tags = toy_kind.labels(rows)
    flagged, score = flag_binary_tags(tags, probs)
    published = rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)
    assert published.sum() > 0 and np.array_equal(published, flagged.any(axis=1))
    assert np.allclose(rows[S.LABEL_SCORE].to_numpy(), np.clip(score, 0, 1))
    assert manifest.audit.tags_flagged == {"missing": int((flagged & ~tags).sum()), "extra": int((flagged & tags).sum())}

    # the catalog's views and named queries, in the SQL variant of tag lists the kind inherits
    n = run_query(Store(str(store)), "pkgs", f"SELECT count(*) AS n FROM issues WHERE version = {version.number} AND missing_names IS NOT NULL").to_pylist()[0][
        "n"
    ]
    assert n == published.sum()
    top = named_query(Store(str(store)), "pkgs", "top_issues", version=version.number, limit=5).to_pylist()
    assert len(top) == 5 and "missing_tags" in top[0]

    # the report and a re-label, and the kind kept by the derived version
    report = json.loads(result.report_json.read_text())
    assert report["label_kind"] == "binary_tags" and {"missing", "extra"} <= set(report["per_class"][0])
    relabeled = labelq.relabel(name="pkgs", store=str(store))
    assert kind_of(relabeled.version.manifest()) is toy_kind
    assert relabeled.version.read(columns=[S.LABEL_SOURCE])[S.LABEL_SOURCE].null_count < rows.num_rows

    # a dataset keeps one kind: the built-in tags kind under the same name is refused
    with pytest.raises(InputError, match=r"label kind 'binary_tags'\), and these rows carry tags \(multi-label\) \('tags'\)"):
        labelq.audit(source=str(tags_file), name="pkgs", store=str(store), label_column="tags", n_folds=3, data_checks=False)


def test_the_kind_is_chosen_once_and_bad_choices_are_named(toy_kind, tags_file):
    from labelq.ingest import IngestOptions, load_examples

    assert kind_of(load_examples(str(tags_file), IngestOptions(label_column="tags"))).name == "tags"
    assert kind_of(load_examples("digits")).name == "single"
    assert kind_of(load_examples(str(tags_file), IngestOptions(label_column="tags", label_kind="binary_tags"))) is toy_kind
    with pytest.raises(InputError, match="takes a list of tags a row, and the label column holds one class a row"):
        load_examples("digits", IngestOptions(label_kind="binary_tags"))
    with pytest.raises(InputError, match="unknown label kind 'ordinal'"):
        load_examples("digits", IngestOptions(label_kind="ordinal"))
    assert kind_of(load_examples("digits", IngestOptions(label_kind="regression"))).name == "regression"  # asked for: the digits as numbers
    assert kind_named("single") == kind_named("single") and kind_named("tags") != kind_named("single")
