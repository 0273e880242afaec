"""An audit that trains no model (the user's pred_probs) leaves a Parquet source's inputs on disk until
publish streams them into the version: the examples table never holds them, and the version is the
same as one whose inputs were read (payload values, columns, content hash)."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelq import schema as S
from labelq.errors import InputError
from labelq.ingest import IngestOptions, load_examples
from labelq.pipeline import AuditConfig, audit
from labelq.predict import pred_probs_array
from labelq.store import Store
from labelq.writer import PAYLOAD


def _write(table: pa.Table, path, row_group_size: int = 250):
    pq.write_table(table.replace_schema_metadata(None), path, row_group_size=row_group_size)  # many row groups: the stream spans them
    return path


def test_given_pred_probs_leave_the_images_in_the_source_and_publish_the_same_version(tmp_path, digits):
    src = _write(digits, tmp_path / "digits.parquet")
    # one detector for both (--detector auto picks the ensemble for images whose pixels are read, as the eager audit's are)
    eager = audit(AuditConfig.from_options(str(src), name="d", store=str(tmp_path / "a"), model="logreg", n_folds=3, detector="confident_learning")).version
    np.save(tmp_path / "p.npy", pred_probs_array(eager.read_table("pred_probs")))

    examples = load_examples(src, IngestOptions(inputs_required=False))
    assert "image" not in examples.column_names  # the examples table never holds the images
    assert S.info_of(examples).deferred["columns"] == ["image"] and S.info_of(examples).inputs == ["image"]

    cfg = AuditConfig.from_options(str(src), name="d", store=str(tmp_path / "b"), pred_probs=str(tmp_path / "p.npy"))
    lazy = audit(cfg).version
    assert lazy.verify() == []
    assert lazy.manifest().content_hash == eager.manifest().content_hash
    assert lazy.manifest().columns == eager.manifest().columns and lazy.manifest().inputs == ["image"]
    assert pq.read_table(lazy.path / PAYLOAD).equals(pq.read_table(eager.path / PAYLOAD))
    checked = [S.IS_NEAR_DUPLICATE, S.NEAR_DUPLICATE_SET, S.IS_OUTLIER, S.OUTLIER_SCORE]  # the checks read the inputs: not run when they stay on disk
    same = [c for c in eager.read().column_names if c not in checked]
    assert lazy.read().select(same).equals(eager.read().select(same))
    assert lazy.read(checked)[S.IS_NEAR_DUPLICATE].null_count == digits.num_rows and eager.read(checked)[S.IS_NEAR_DUPLICATE].null_count == 0
    assert S.info_of(pq.read_schema(lazy.path / PAYLOAD)).deferred is None  # a version's metadata never points outside it
    assert lazy.manifest().n_label_issues == eager.manifest().n_label_issues
    some = eager.read([S.ID])[S.ID].to_pylist()[::97]  # a report's top rows: only the row groups that hold them are read
    assert lazy.payload_rows(some).equals(pq.read_table(lazy.path / PAYLOAD).take(np.arange(0, digits.num_rows, 97)))

    again = audit(cfg).version  # an unchanged scheduled re-audit: the streamed payload equals the version's, nothing is published
    assert again.number == lazy.number == 1 and len(Store(tmp_path / "b").versions("d")) == 1


def test_derived_ids_and_a_split_are_read_a_batch_at_a_time_from_a_folder(tmp_path, digits):
    n = digits.num_rows
    table = digits.drop_columns(["id", "split"]).append_column("split", pa.array(np.where(np.arange(n) % 3 == 0, "test", "train")))
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, start in enumerate(range(0, n, 700)):
        _write(table.slice(start, 700), folder / f"part-{i}.parquet", row_group_size=128)

    for split in (None, "test"):
        eager = load_examples(folder, IngestOptions(split=split, inputs_required=True))
        lazy = load_examples(folder, IngestOptions(split=split, inputs_required=False))
        assert "image" not in lazy.column_names
        assert lazy[S.ID].equals(eager[S.ID]) and lazy[S.LABEL].equals(eager[S.LABEL])  # ids hashed from the images, batch by batch
        assert lazy.num_rows == (n if split is None else int((np.arange(n) % 3 == 0).sum()))
        version = Store(tmp_path / f"s-{split}").publish("d", lazy, {})
        assert pq.read_table(version.path / PAYLOAD).equals(eager.select([S.ID, "image"]))
        assert version.verify() == []


def test_a_source_changed_during_the_audit_is_refused_and_nothing_is_written(tmp_path, digits):
    src = _write(digits, tmp_path / "digits.parquet")
    lazy = load_examples(src, IngestOptions(inputs_required=False))
    _write(digits.slice(0, 1000), src)
    os.utime(src, ns=(1, 1))
    store = Store(tmp_path / "s")
    with pytest.raises(InputError, match="changed while the audit ran"):
        store.publish("d", lazy, {})
    assert store.versions("d") == [] and not list(store.dataset_dir("d").glob(".tmp-*"))


def test_judges_read_the_text_even_with_given_pred_probs(tmp_path):
    (tmp_path / "j.toml").write_text('[[judge]]\nname = "v"\nbase_url = "http://127.0.0.1:9/v1"\n')
    assert not AuditConfig.from_options("x.parquet", name="x", store=str(tmp_path), pred_probs="p.npy").ingest.inputs_required
    assert AuditConfig.from_options("x.parquet", name="x", store=str(tmp_path), pred_probs="p.npy", judges=str(tmp_path / "j.toml")).ingest.inputs_required
