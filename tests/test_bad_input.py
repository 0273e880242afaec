"""Every bad input gets a clear error (exit 2, the problem and the fix) before any training; good input that
looked odd (labels plus pred_probs only, a latin-1 CSV) works."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import require

from labelq import schema as S
from labelq.cli import main
from labelq.errors import InputError
from labelq.pipeline import AuditConfig
from labelq.validation import check_classes_for_folds

QUICK = ["--no-prefect", "--folds", "3", "-q"]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def assert_clear(out, *phrases: str) -> None:
    assert out.exit_code == 2, out.output
    assert "Traceback" not in out.output and "error: " in out.output and "fix: " in out.output, out.output
    for phrase in phrases:
        assert phrase in out.output, (phrase, out.output)


def _mail_rows(n: int = 30) -> list[tuple[str, str]]:
    return [(f"calm meeting notes for the project {i}", "ham") for i in range(n)] + [(f"win free cash prize offer now {i}", "spam") for i in range(n)]


def test_an_empty_csv(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    assert_clear(run("audit", str(tmp_path / "empty.csv"), "--store", str(tmp_path / "s"), *QUICK), "empty.csv is empty")


def test_a_malformed_jsonl_line_is_named(tmp_path):
    lines = [json.dumps({"text": text, "label": label}) for text, label in _mail_rows()]
    lines.insert(6, '{"text": "broken, "label": "ham"}')
    (tmp_path / "mail.jsonl").write_text("\n".join(lines) + "\n")
    assert_clear(run("audit", str(tmp_path / "mail.jsonl"), "--store", str(tmp_path / "s"), *QUICK), "line 7 is not a JSON object")


def test_a_latin1_csv_needs_and_takes_encoding(tmp_path):
    text = "text,label\n" + "\n".join(f"{t} caf\u00e9,{y}" for t, y in _mail_rows()) + "\n"
    (tmp_path / "mail.csv").write_bytes(text.encode("latin-1"))
    store = str(tmp_path / "s")
    assert_clear(run("audit", str(tmp_path / "mail.csv"), "--store", store, *QUICK), "is not valid UTF-8", "--encoding latin-1")
    out = run("audit", str(tmp_path / "mail.csv"), "--store", store, "--encoding", "latin-1", *QUICK)
    assert out.exit_code == 0, out.output
    assert_clear(run("audit", str(tmp_path / "mail.csv"), "--store", store, "--encoding", "klingon", *QUICK), "unknown encoding 'klingon'")


def test_an_all_empty_text_column(tmp_path):
    lines = ["text,label"] + [f",{y}" for _, y in _mail_rows()]
    (tmp_path / "blank.csv").write_text("\n".join(lines) + "\n")
    assert_clear(run("audit", str(tmp_path / "blank.csv"), "--store", str(tmp_path / "s"), *QUICK), "text column 'text' is empty in every row")
    lines = [json.dumps({"review": "  ", "label": y}) for _, y in _mail_rows()]  # blank strings, named by the user
    (tmp_path / "blank.jsonl").write_text("\n".join(lines) + "\n")
    out = run("audit", str(tmp_path / "blank.jsonl"), "--text-column", "review", "--store", str(tmp_path / "s"), *QUICK)
    assert_clear(out, "text column 'review' is empty in every row")


@pytest.mark.parametrize(
    "param, phrase",
    [
        ("epochs=abc", "must be a whole number"),
        ("epochs=0", "must be greater than 0"),
        ("lr=-1", "must be greater than 0"),
        ("epochs=2.5", "must be a whole number"),
    ],
)
def test_bad_model_parameters_fail_before_anything_is_read(tmp_path, param, phrase):
    out = run("audit", "digits", "--store", str(tmp_path / "s"), "--model", "cnn", "--model-param", param, *QUICK)
    assert_clear(out, phrase, "--model-param")
    out = run("audit", "digits", "--store", str(tmp_path / "s"), "--model-param", param, *QUICK)  # model auto
    assert_clear(out, phrase)
    assert not (tmp_path / "s" / "datasets" / "digits").exists() or not list((tmp_path / "s" / "datasets" / "digits").glob("v*"))


@pytest.mark.parametrize("where", ["store", "datasets", "cache"])
def test_a_store_path_that_is_a_file(tmp_path, where):
    root = tmp_path / "s"
    target = {"store": root, "datasets": root / "datasets", "cache": root / "cache"}[where]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("not a folder")
    if where == "store":  # click checks --store itself
        out = run("audit", "digits", "--store", str(root), *QUICK)
        assert out.exit_code == 2 and f"'{root}' is a file" in out.output
        with pytest.raises(InputError, match=f"{target} is a file, not a folder"):
            AuditConfig.from_options(source="digits", store=str(root))
    else:
        assert_clear(run("audit", "digits", "--store", str(root), *QUICK), f"{target} is a file, not a folder")


def test_a_read_only_store(tmp_path):
    root = tmp_path / "s"
    (root / "datasets").mkdir(parents=True)
    if os.geteuid() == 0:  # root ignores permission bits: make the folder immutable instead
        made = subprocess.run(["chattr", "+i", str(root / "datasets")], capture_output=True)
        if made.returncode != 0:
            pytest.skip(f"chattr +i is not supported here: {made.stderr.decode().strip()}")
    else:
        (root / "datasets").chmod(0o555)
    try:
        assert_clear(run("audit", "digits", "--store", str(root), *QUICK), "cannot be written to", "--store")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(root / "datasets")], check=True)
        else:
            (root / "datasets").chmod(0o755)


def test_bad_tag_lists_are_refused_before_training(tmp_path):
    """A multi-label source whose lists are broken: a row without a list, tags split out of numbers,
    the CNN (one class a row) asked for tags, and every list empty."""
    rows = _mail_rows()
    table = pa.table({"text": [t for t, _ in rows], "label": [None if i == 3 else [y] for i, (_, y) in enumerate(rows)]})
    pq.write_table(table, tmp_path / "null.parquet")
    assert_clear(run("audit", str(tmp_path / "null.parquet"), "--store", str(tmp_path / "s"), *QUICK), "no tag list (null)", "an empty list")
    pq.write_table(pa.table({"text": [t for t, _ in rows], "label": list(range(len(rows)))}), tmp_path / "ints.parquet")
    assert_clear(
        run("audit", str(tmp_path / "ints.parquet"), "--label-separator", "|", "--store", str(tmp_path / "s"), *QUICK),
        "splits text",
        "leave --label-separator out",
    )
    pq.write_table(pa.table({"text": [t for t, _ in rows], "label": [[] for _ in rows]}), tmp_path / "empty.parquet")
    assert_clear(run("audit", str(tmp_path / "empty.parquet"), "--store", str(tmp_path / "s"), *QUICK), "every tag list is empty", "--label-column")
    mixed = ['["spam", 1]' if i % 2 else '["ham"]' for i in range(len(rows))]
    pq.write_table(pa.table({"text": [t for t, _ in rows], "label": mixed}), tmp_path / "mixed.parquet")
    assert_clear(run("audit", str(tmp_path / "mixed.parquet"), "--store", str(tmp_path / "s"), *QUICK), "mix kinds of values", "tag names, or of tag indices")


def test_bracketed_class_names_are_one_label_a_row():
    """Labels like '[spam]' look like JSON lists but are not JSON: one class a row, as given."""
    from labelq.ingest import RawSource, examples_from_raw

    rows = _mail_rows()
    examples = examples_from_raw(RawSource(pa.table({"text": [t for t, _ in rows], "label": [f"[{y}]" for _, y in rows]})))
    assert not S.info_of(examples).multi_label and S.info_of(examples).class_names == sorted({f"[{y}]" for _, y in rows})


def test_a_corrupt_image_is_named_by_its_path(tmp_path):
    from PIL import Image

    digits = __import__("sklearn.datasets", fromlist=["load_digits"]).load_digits()
    for i in range(40):
        folder = tmp_path / "imgs" / str(digits.target[i] % 2)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((digits.images[i] * 16).astype(np.uint8)).save(folder / f"{i}.png")
    (tmp_path / "imgs" / "1" / "broken.png").write_bytes(b"\x89PNG not really")
    out = run("audit", str(tmp_path / "imgs"), "--store", str(tmp_path / "s"), *QUICK)
    assert_clear(out, "image '1/broken.png'", "could not be decoded")


def test_a_class_with_one_example_gets_a_fix_that_works():
    names = [f"category-{i:03d}-with-a-long-name" for i in range(300)]
    labels = np.repeat(np.arange(300), 3)
    labels = np.concatenate([labels, [0] * 10])
    labels[labels == 7] = 8
    labels = np.concatenate([labels, [7]])  # class 7 has one example
    with pytest.raises(InputError) as info:
        check_classes_for_folds(labels, names, 5)
    err = info.value
    assert "--folds 2" not in err.fix and "at least 2 examples of every class" in err.fix and "category-007" in err.fix
    assert len(str(err)) < 600 and "(298 in all)" in err.problem
    assert err.problem.startswith("298 classes have")  # classes 0 (13 rows) and 8 (6 rows) have enough
    with pytest.raises(InputError, match=r"^1 class has fewer examples than the 5 folds \('b': 4\)"):
        check_classes_for_folds(np.array([0] * 9 + [1] * 4), ["a", "b"], 5)
    with pytest.raises(InputError) as info:
        check_classes_for_folds(np.array([0] * 9 + [1] * 4), ["a", "b"], 5)
    assert info.value.fix.startswith("use --folds 4")


def test_labels_and_pred_probs_alone_are_an_audit(tmp_path):
    """cleanlab's own core input: a table of id, label plus a pred_probs.npy."""
    bench = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "benchmarks", "label-errors", "mnist")
    require(os.path.exists(os.path.join(bench, "labels.npy")), "the label-errors benchmark data (../shared/benchmarks/label-errors)")
    labels = np.load(os.path.join(bench, "labels.npy")).astype(np.int64)
    probs = np.load(os.path.join(bench, "pred_probs.npy"))
    pq.write_table(pa.table({"id": [f"mnist-{i}" for i in range(len(labels))], "label": labels}), tmp_path / "labels.parquet")
    np.save(tmp_path / "p.npy", probs / probs.sum(1, keepdims=True))
    store = str(tmp_path / "s")
    out = run("audit", str(tmp_path / "labels.parquet"), "--pred-probs", str(tmp_path / "p.npy"), "--store", store, "--no-prefect", "--top", "3")
    assert out.exit_code == 0, out.output
    assert "Published labels v0001: 10,000 rows, 15 suspected label errors" in out.output
    html = (tmp_path / "s" / "datasets" / "labels" / "reports" / "v0001.html").read_text()
    assert "<th>example</th>" not in html and "mnist-" in html
    out = run("audit", str(tmp_path / "labels.parquet"), "--store", store, *QUICK)  # without pred_probs the inputs are needed
    assert_clear(out, "could not tell which columns hold the inputs")


def test_benchmark_markdown_escapes_model_names():
    from labelq.benchmark.report import md_escape

    assert md_escape("cnn | *bold* <b>x</b>\n[l](u)") == r"cnn \| \*bold\* \<b\>x\</b\> \[l\]\(u\)"


def _refused_audit_leaves_nothing(tmp_path, source, *args: str, phrases: tuple[str, ...]) -> None:
    store = tmp_path / "store"
    out = run("audit", str(source), "--name", "bad", "--store", str(store), *QUICK, *args)
    assert_clear(out, *phrases)
    assert not (store / "datasets" / "bad").exists()  # no empty dataset folder is left behind


def test_a_truncated_parquet_source(tmp_path, digits):
    whole = tmp_path / "digits.parquet"
    pq.write_table(digits, whole)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    _refused_audit_leaves_nothing(tmp_path, cut, phrases=("the Parquet source", "cannot be read", "truncated"))


def test_float_ids_with_nan_are_refused(tmp_path):
    rows = _mail_rows()
    table = pa.table({"key": [float(i) for i in range(len(rows) - 1)] + [float("nan")], "text": [t for t, _ in rows], "label": [c for _, c in rows]})
    pq.write_table(table, tmp_path / "mail.parquet")
    _refused_audit_leaves_nothing(tmp_path, tmp_path / "mail.parquet", "--id-column", "key", phrases=("NaN as its id", "rows 59"))


def test_a_csv_without_line_breaks_is_named_so(tmp_path):
    path = tmp_path / "one-line.csv"
    with open(path, "w") as fh:
        fh.write("text,label\n")
        for _ in range(70):  # 70 MiB in one row: longer than any row labelq reads from a CSV
            fh.write("x" * 2**20)
    _refused_audit_leaves_nothing(tmp_path, path, phrases=("longer than 64 MiB", "line break"))
    long_row = tmp_path / "long-row.csv"  # a row of 3 MiB (past pyarrow's 1 MiB block) is read
    rows = _mail_rows()
    long_row.write_text("text,label\n" + "\n".join(f"{t},{c}" for t, c in [("y" * 3 * 2**20, "ham"), *rows]) + "\n")
    from labelq.ingest.files import read_csv

    assert read_csv(long_row).table.num_rows == len(rows) + 1


def test_a_regression_target_is_named_as_such(tmp_path):
    """scikit-learn's diabetes table: a float target with 214 distinct values in 442 rows is a regression target
    (it used to read as 214 classes, refused for having too few rows a class). ``--task single`` refuses it
    with the way out; class ids stored as whole floats still read as classes; a regression target that is not
    numbers, or holds NaN or infinities, is refused before any model trains, naming the rows."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    cols = {f"f{j}": d.data[:, j] for j in range(d.data.shape[1])}
    pq.write_table(pa.table({"label": d.target, **cols}), tmp_path / "diabetes.parquet")
    out = run("audit", str(tmp_path / "diabetes.parquet"), "--store", str(tmp_path / "s"), "--task", "single", *QUICK)
    assert_clear(out, "214 distinct numbers in 442 rows", "regression target", "--task regression")
    pq.write_table(pa.table({"label": d.target + 0.5, **cols}), tmp_path / "halves.parquet")
    out = run("audit", str(tmp_path / "halves.parquet"), "--store", str(tmp_path / "s"), "--task", "single", *QUICK)
    assert_clear(out, "non-integer numbers", "regression target")
    ids = (np.arange(442) % 3).astype(np.float64)
    pq.write_table(pa.table({"label": ids, **cols}), tmp_path / "ids.parquet")
    assert run("audit", str(tmp_path / "ids.parquet"), "--store", str(tmp_path / "s"), "--model", "logreg", *QUICK).exit_code == 0
    words = pa.array(np.where(np.arange(442) % 2, "high", "low"))
    pq.write_table(pa.table({"label": words, **cols}), tmp_path / "words.parquet")
    out = run("audit", str(tmp_path / "words.parquet"), "--store", str(tmp_path / "s"), "--task", "regression", *QUICK)
    assert_clear(out, "must be numbers", "--label-column")
    for bad, what in ((np.nan, "null, NaN or infinite"), (np.inf, "null, NaN or infinite")):
        target = d.target.copy()
        target[[3, 7]] = bad
        pq.write_table(pa.table({"id": [f"p{i}" for i in range(442)], "label": target, **cols}), tmp_path / "bad.parquet")
        out = run("audit", str(tmp_path / "bad.parquet"), "--store", str(tmp_path / "s"), "--task", "regression", *QUICK)
        assert_clear(out, "2 rows have no finite target value", what, "'p3', 'p7'")
    out = run("audit", str(tmp_path / "diabetes.parquet"), "--store", str(tmp_path / "s2"), "--model", "logreg", *QUICK)
    assert_clear(out, "model 'logreg' learns classes", "hgb-regressor")
    assert not (tmp_path / "s2" / "datasets").exists() or not any((tmp_path / "s2" / "datasets").rglob("v0001"))
