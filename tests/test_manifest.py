"""The typed manifest: the on-disk layout round-trips, older manifests read, derived versions carry their sections."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from labelq.manifest import AuditSection, Manifest, RelabelSection, ReviewSection, RunSection


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """An audited version of digits and the version its re-labeling derived from it."""
    from labelq.pipeline import AuditConfig, audit
    from labelq.relabel import relabel

    root = str(tmp_path_factory.mktemp("store"))
    audited = audit(AuditConfig.from_options(source="digits", name="dg", store=root, model="logreg", n_folds=3)).version
    return audited, relabel(name="dg", store=root).version


def test_the_on_disk_layout_round_trips_and_keeps_unknown_keys(versions):
    for v in versions:
        raw = v.manifest_json()
        m = v.manifest()
        assert m.audit.model == raw["model"] and m.audit.class_error_rate == raw["class_error_rate"] and m.n_label_issues == raw["n_label_issues"]
        body = {k: val for k, val in raw.items() if k != Manifest.CHECKSUM}
        assert json.loads(json.dumps(m.to_json())) == body  # nothing lost, nothing added


def test_a_derived_version_carries_the_audit_and_adds_its_section(versions):
    audited, relabeled = (v.manifest() for v in versions)
    assert relabeled.audit == audited.audit and relabeled.derived_from == "v0001" and relabeled.parent_version == 1
    assert relabeled.relabel.parent == "v0001" and relabeled.relabel.extra["coverage"] == 0.9 and audited.relabel is None
    # the parent's tables are carried, the soft labels added; the run record is the audit's
    assert set(relabeled.files) == (set(audited.files) - {"run.json"}) | {"soft_labels.parquet"}


def test_every_audit_key_is_written_so_the_versions_view_binds():
    out = Manifest().to_json()
    for key in ("n_label_issues", "num_label_issues_estimate", "n_corrected", "model", "n_folds", "seed", "filter_by", "auto_fix"):
        assert key in out and out[key] is None


def test_a_manifest_from_before_the_typed_class_reads():
    old = {"name": "d", "version": 2, "seed": 3, "relabel": {"coverage": 0.9, "kinds": {"ok": 5}, "mean_set_size": 1.2}, "writer": 7}
    m = Manifest.from_json(old)
    assert m.audit.seed == 3 and m.relabel.kinds == {"ok": 5} and m.relabel.extra == {"coverage": 0.9} and m.extra == {"writer": 7}
    written = m.to_json()
    assert m.review is None and written["writer"] == 7
    assert {k: v for k, v in written["relabel"].items() if v is not None} == old["relabel"]  # every field is written, null where unknown


def test_derive_carries_every_section_but_the_review_and_the_run():
    parent = Manifest(
        name="d",
        version=4,
        n_corrected=1,
        audit=AuditSection(seed=1, model="cnn"),
        relabel=RelabelSection(kinds={"ok": 3}),
        review=ReviewSection(n_reviews=2),
        run=RunSection(flow_run_id="x"),
    )
    child = parent.derive(n_corrected=5, derived_from="v0004")
    assert child.audit == parent.audit and child.relabel == parent.relabel and child.n_corrected == 5 and child.derived_from == "v0004"
    assert child.review is None and child.run == RunSection()


def test_the_noise_estimates_live_in_noise_parquet_and_older_manifests_still_give_them(versions, tmp_path):
    """K x K estimates are a file of the version (K^2 rows), not manifest JSON: at 1000 classes they were 23 MB
    of JSON; a re-label carries the file over (linked), and a version from before it reads them from its manifest."""
    audited, relabeled = versions
    joint, noise = audited.noise()
    k = len(audited.manifest().class_names)
    assert joint.shape == noise.shape == (k, k) and abs(joint.sum() - 1) < 1e-9
    np.testing.assert_allclose(noise.sum(axis=0), 1)  # P(given | true): each true label's column sums to one
    raw = audited.manifest_json()
    assert "noise.parquet" in raw["files"] and "joint" not in raw and "noise_matrix" not in raw and len(raw["class_error_rate"]) == k
    assert (relabeled.path / "noise.parquet").stat().st_ino == (audited.path / "noise.parquet").stat().st_ino
    assert audited.verify() == []

    old = type(audited)(audited.name, audited.number, tmp_path / "v0001")
    shutil.copytree(audited.path, old.path)
    (old.path / "noise.parquet").unlink()
    assert old.noise() is None
    (old.path / "manifest.json").write_text(json.dumps({**raw, "joint": joint.tolist(), "noise_matrix": noise.tolist()}))
    np.testing.assert_array_equal(old.noise()[0], joint)
    np.testing.assert_array_equal(old.noise()[1], noise)


def test_the_near_duplicate_summary_is_typed_and_its_json_unchanged():
    """``audit.near_duplicates`` reads as a ``NeighborSummary`` and writes back the same JSON, a key it does not know
    included; a version from before the outlier check reads with its outlier fields None."""
    from labelq.manifest import Manifest, NeighborSummary

    on_disk = {
        "near_duplicates": {"space": "pixels-pca", "dims": 64, "near_duplicate_rows": 6, "near_duplicate_sets": 3, "outlier_rows": 2, "future_key": [1, 2]},
        "model": "cnn",
    }
    m = Manifest.from_json(on_disk)
    dup = m.audit.near_duplicates
    assert isinstance(dup, NeighborSummary) and (dup.space, dup.near_duplicate_sets, dup.outlier_rows) == ("pixels-pca", 3, 2)
    assert dup.extra == {"future_key": [1, 2]}
    written = m.to_json()
    assert written["near_duplicates"] == {**{f: None for f in NeighborSummary.__dataclass_fields__ if f != "extra"}, **on_disk["near_duplicates"]}
    assert Manifest.from_json(written).audit.near_duplicates == dup
    older = Manifest.from_json({"near_duplicates": {"space": "tfidf-svd", "near_duplicate_rows": 0}}).audit.near_duplicates
    assert older.outlier_rows is None and older.near_duplicate_rows == 0
