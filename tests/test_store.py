"""The versioned store: atomic, numbered, never overwritten; round trips through DuckDB and Hugging Face datasets."""

from __future__ import annotations

import json
import multiprocessing as mp

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelq import schema as S
from labelq.decide import Decision, audited_table
from labelq.errors import InputError, StoreError
from labelq.io import file_sha256
from labelq.manifest import AuditSection, Manifest
from labelq.sql import run_query
from labelq.store import Store


def audited(examples: pa.Table) -> pa.Table:
    n = examples.num_rows
    flagged = np.zeros(n, dtype=bool)
    flagged[[3, 5]] = True
    rank = np.zeros(n, dtype=np.int64)
    rank[[5, 3]] = [1, 2]
    return audited_table(examples, Decision(np.linspace(0, 1, n), flagged, np.zeros(n, np.int64), rank, np.full(n, -1)))


def test_publish_numbers_versions_and_records_the_parent(digits, store_dir):
    store = Store(store_dir)
    data = audited(digits.slice(0, 50))
    v1 = store.publish("d", data, {}, Manifest(audit=AuditSection(seed=1)))
    v2 = store.publish("d", data, {}, Manifest(audit=AuditSection(seed=2)))
    assert (v1.tag, v2.tag) == ("v0001", "v0002")
    m1, m2 = v1.manifest_json(), v2.manifest_json()
    assert m1["parent_version"] is None and m2["parent_version"] == 1 and m2["seed"] == 2
    assert m1["class_names"] == [str(i) for i in range(10)] and m1["rows"] == 50
    assert m1["files"]["data/part-00000.parquet"] == file_sha256(v1.path / "data" / "part-00000.parquet")
    assert m1["content_hash"] == m2["content_hash"]
    assert [v.number for v in store.versions("d")] == [1, 2] and store.version("d").number == 2
    assert store.version("d", "v0001") == v1 and store.version("d", 1) == v1
    with pytest.raises(StoreError, match="has no version 7"):
        store.version("d", 7)
    with pytest.raises(StoreError, match="(?s)no published versions of 'other'.*labelq audit"):
        store.version("other")
    with pytest.raises(InputError, match="invalid dataset name"):
        store.versions("../escape")


def test_published_rows_round_trip_through_duckdb_and_datasets(digits, store_dir):
    import datasets

    store = Store(store_dir)
    data = audited(digits.slice(0, 40))
    v = store.publish("d", data, {})
    back = v.read()
    assert back.select(data.column_names).equals(data.select(data.column_names))
    assert S.info_of(back) == S.info_of(data)  # class names and the rest of the metadata survive
    rows = run_query(store, "d", "SELECT id, label, image FROM latest ORDER BY id")
    assert rows.column("id").to_pylist() == sorted(data["id"].to_pylist())
    original = dict(zip(data["id"].to_pylist(), data["image"].to_pylist()))
    assert all(original[i] == img for i, img in zip(rows["id"].to_pylist(), rows["image"].to_pylist()))
    ds = datasets.load_dataset("parquet", data_files=v.data_glob, split="train")
    for group in ["payload", "scores"]:  # as the README shows
        more = datasets.load_dataset("parquet", data_files=str(v.path / f"{group}.parquet"), split="train")
        ds = datasets.concatenate_datasets([ds, more.remove_columns("id")], axis=1)
    assert ds["label_score"] == data["label_score"].to_pylist() and ds["suggested_label"] == data["suggested_label"].to_pylist()
    assert ds.features["label"].names == [str(i) for i in range(10)]
    assert ds["id"] == data["id"].to_pylist() and ds["label"] == data["label"].to_pylist()
    assert ds.features["image"].__class__.__name__ == "Image" and ds[0]["image"].size == (8, 8)


def test_hugging_face_features_are_those_datasets_would_write():
    """labelq writes the features without importing datasets (70 MB); they equal datasets' own."""
    import datasets

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    types = [pa.string(), pa.large_string(), pa.int8(), pa.int64(), pa.uint16(), pa.float16(), pa.float32(), pa.float64(), pa.bool_(), pa.binary()]
    types += [pa.date32(), pa.date64(), pa.timestamp("us"), pa.timestamp("ms", tz="UTC"), pa.time64("ns"), pa.duration("s"), pa.decimal128(10, 2)]
    types += [pa.dictionary(pa.int32(), pa.string()), pa.list_(pa.float32()), pa.list_(pa.float32(), 10), pa.large_list(pa.int32()), pa.null()]
    types += [pa.struct([("a", pa.int32()), ("b", pa.list_(pa.string()))]), pa.list_(pa.struct([("x", pa.float64())])), pa.binary(4)]
    fields = [(f"c{i}", t) for i, t in enumerate(types)]
    schema = pa.schema([("id", pa.string()), ("label", pa.int64()), ("labels", pa.list_(pa.int64())), ("image", image), *fields])
    theirs = datasets.Features.from_arrow_schema(schema)
    names = ["cat", "dog"]
    theirs["label"], theirs["labels"], theirs["image"] = datasets.ClassLabel(names=names), datasets.List(datasets.ClassLabel(names=names)), datasets.Image()
    assert S.hf_features(schema, names) == theirs.to_dict()
    assert datasets.Features.from_dict(S.hf_features(schema, names)) == theirs


def test_failed_publish_leaves_the_store_as_it_was(digits, store_dir, monkeypatch):
    store = Store(store_dir)
    data = audited(digits.slice(0, 20))
    store.publish("d", data, {})
    before = sorted(p.name for p in store.dataset_dir("d").iterdir())
    import labelq.writer as store_module  # the writing side of the store

    real = store_module.write_parquet
    calls = []

    def failing(path, table):  # the disk fills up while the second file is written
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(path, table)

    monkeypatch.setattr(store_module, "write_parquet", failing)
    with pytest.raises(OSError, match="No space left"):
        store.publish("d", data, {"pred_probs": pa.table({"id": ["a"]})})
    assert sorted(p.name for p in store.dataset_dir("d").iterdir()) == before
    assert [v.number for v in store.versions("d")] == [1]
    assert run_query(store, "d", "SELECT max(version) AS v FROM versions")["v"].to_pylist() == [1]


def test_leftovers_of_a_killed_writer_are_invisible_and_cleaned(digits, store_dir):
    store = Store(store_dir)
    d = store.dataset_dir("d")
    (d / ".tmp-deadbeef" / "data").mkdir(parents=True)
    (d / ".tmp-deadbeef" / "data" / "part-00000.parquet").write_bytes(b"half a file")
    assert store.versions("d") == []
    store.publish("d", audited(digits.slice(0, 10)), {})
    assert not list(d.glob(".tmp-*")) and [v.tag for v in store.versions("d")] == ["v0001"]


def _publish_in_child(root: str, n: int, queue) -> None:
    from labelq.ingest import load_examples

    ex = load_examples("digits").slice(0, 30)
    queue.put([Store(root).publish("d", audited(ex), {}, Manifest(extra={"writer": n})).number for _ in range(3)])


def test_concurrent_writers_never_share_a_version(store_dir):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_publish_in_child, args=(str(store_dir), n, queue)) for n in range(2)]
    for p in procs:
        p.start()
    numbers = sorted(queue.get(timeout=120) + queue.get(timeout=120))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert numbers == [1, 2, 3, 4, 5, 6]
    store = Store(store_dir)
    writers = [json.loads((v.path / "manifest.json").read_text())["writer"] for v in store.versions("d")]
    assert sorted(writers) == [0, 0, 0, 1, 1, 1]
    assert run_query(store, "d", "SELECT count(*) AS n FROM versions")["n"].to_pylist() == [6]


def test_a_store_with_versions_from_before_the_payload_split_reads_as_one(digits, store_dir):
    """Versions published before inputs moved to payload.parquet hold them in their data: the rows view
    and Version.read give one column either way."""
    import dataclasses

    store = Store(store_dir)
    data = audited(digits.slice(0, 30))
    old_layout = S.with_info(data, dataclasses.replace(S.info_of(data), inputs=[]))  # nothing marked as input: all in data/
    v1 = store.publish("d", old_layout, {})
    v2 = store.publish("d", data, {})
    assert not (v1.path / "payload.parquet").exists() and (v2.path / "payload.parquet").exists()
    assert "image" in pq.read_schema(v1.path / "data" / "part-00000.parquet").names
    assert "image" not in pq.read_schema(v2.path / "data" / "part-00000.parquet").names
    assert v1.read()["image"].equals(v2.read()["image"])
    rows = run_query(store, "d", "SELECT version, count(image) AS n FROM rows GROUP BY version ORDER BY version").to_pylist()
    assert rows == [{"version": 1, "n": 30}, {"version": 2, "n": 30}]
    assert run_query(store, "d", "SELECT * FROM latest LIMIT 1").column_names.count("image") == 1


def test_a_store_given_for_a_store_is_the_same_store(tmp_path):
    """``labelq.audit(store=Store(p))`` once wrote into a folder named after the object."""
    assert Store(Store(tmp_path)).root == Store(tmp_path).root == tmp_path


def test_labelq_relabel_is_callable_after_the_audit_imported_the_relabel_package():
    """``labelq.relabel(name=...)`` is the documented call; importing any module of the relabel package (the review
    app and the benchmark report do) binds ``labelq.relabel`` to the package, which must still run the function."""
    import labelq
    import labelq.pipeline  # noqa: F401
    import labelq.relabel.review  # noqa: F401

    assert callable(labelq.relabel)
    with pytest.raises((InputError, StoreError)):
        labelq.relabel(name="no-such-dataset", store="/nonexistent-store-for-test")


def test_building_an_audit_config_writes_nothing(tmp_path):
    """The configuration checks the store's folders without writing; the audit's ingest step probes that it takes writes."""
    from labelq.pipeline import AuditConfig, ingest_step

    cfg = AuditConfig.from_options(source="digits", store=str(tmp_path / "s"))
    assert not (tmp_path / "s").exists()
    ingest_step(cfg)
    assert (tmp_path / "s" / "cache" / "folds").is_dir() and not list((tmp_path / "s").rglob(".write-probe-*"))


def test_rows_at_reads_rows_by_position_from_their_row_groups(digits, store_dir, tmp_path):
    """``Version.rows_at``: the rows at any positions, in the order asked (repeats too), from data/ and the group files
    (the images in payload.parquet, the scores in scores.parquet), as ``read().take`` gives them."""
    from labelq.store import _take_rows

    v = Store(store_dir).publish("d", audited(digits), {})
    assert v.groups()  # the inputs and scores live apart from data/
    positions = [1796, 3, 900, 3, 0]
    assert v.rows_at(positions).to_pylist() == v.read().take(positions).to_pylist()
    only = v.rows_at([5], columns=["image"])
    assert only.column_names == ["image"] and only.to_pylist() == v.read(columns=["image"]).take([5]).to_pylist()
    with pytest.raises(IndexError, match="not row 1797"):
        v.rows_at([1797])
    table = pa.table({"id": [f"r{i}" for i in range(100)], "x": np.arange(100)})
    pq.write_table(table, tmp_path / "groups.parquet", row_group_size=7)  # 15 row groups
    got = _take_rows(pq.ParquetFile(tmp_path / "groups.parquet"), np.array([99, 6, 7, 50, 6]), ["x"])
    assert got["x"].to_pylist() == [99, 6, 7, 50, 6]
