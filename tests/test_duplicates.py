"""Exact and near duplicates, leaks across splits and conflicting labels, on real data with planted copies.

Digits: 15 exact and 15 near copies (every pixel moved by up to 6 grey levels, and brighter) of known
rows, half of them in another split (leaks) and a third with another label (conflicts). Fine-food
reviews: 20 copies with a word changed, a sentence added, or the case and spacing changed; and the
copies that the dataset holds itself. Each audit runs through the CLI into a real store and catalog.
"""

from __future__ import annotations

import dataclasses
import difflib
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import load_builtin

from labelq import schema as S
from labelq.cli import main
from labelq.detect.neighbors import NeighborOptions, check_neighbors
from labelq.errors import InputError
from labelq.history import read_history
from labelq.ingest.images import decode_images
from labelq.sql import named_query, run_query
from labelq.store import Store


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def planted_digits(seed: int = 0) -> tuple[pa.Table, dict[str, dict]]:
    """Digits with 30 planted copies; returns the table and, per copy, its source row's id and what was planted."""
    digits = load_builtin("digits")
    rng = np.random.default_rng(seed)
    pixels = decode_images(digits["image"])[..., 0]
    labels = digits[S.LABEL].to_numpy()
    ids = digits[S.ID].to_pylist()
    rows, planted = [], {}
    for j, i in enumerate(rng.choice(len(pixels), 30, replace=False)):
        exact = j < 15
        img = pixels[i] if exact else np.clip(pixels[i].astype(int) + rng.integers(-6, 7, pixels[i].shape) + 4, 0, 255).astype(np.uint8)
        conflict, leak = j % 3 == 0, j % 2 == 1
        copy_id = f"copy-{j:02d}"
        rows.append({"id": copy_id, "label": int((labels[i] + 1) % 10 if conflict else labels[i]), "split": "test" if leak else "all", "png": _png(img)})
        planted[copy_id] = {"source": ids[i], "exact": exact, "conflict": conflict, "leak": leak}
    image_type = digits.schema.field("image").type
    extra = pa.table(
        {
            "id": [r["id"] for r in rows],
            "label": pa.array([r["label"] for r in rows], pa.int64()),
            "split": [r["split"] for r in rows],
            "image": pa.array([{"bytes": r["png"], "path": None} for r in rows], image_type),
        }
    )
    table = pa.concat_tables([digits.select(["id", "label", "split", "image"]), extra])
    return table.replace_schema_metadata(digits.schema.metadata), planted


@pytest.fixture(scope="module")
def digits_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dups")
    table, planted = planted_digits()
    pq.write_table(table.replace_schema_metadata(None), folder / "digits-copies.parquet")
    root = folder / "store"
    out = CliRunner().invoke(
        main, ["audit", str(folder / "digits-copies.parquet"), "--name", "dc", "--store", str(root), "--model", "logreg", "--folds", "3", "--no-prefect"]
    )
    assert out.exit_code == 0, out.output
    return Store(root), planted, out.output


def test_planted_digit_copies_are_found_with_their_leaks_and_conflicts(digits_store):
    store, planted, output = digits_store
    v = store.version("dc")
    rows = v.read([S.ID, S.SPLIT, S.LABEL, S.IS_NEAR_DUPLICATE, S.NEAR_DUPLICATE_SET])
    flagged = {r[S.ID]: r for r in rows.to_pylist() if r[S.IS_NEAR_DUPLICATE]}
    # recall: every copy is in a set with the row it was copied from
    found = [cid for cid, p in planted.items() if cid in flagged and p["source"] in flagged[cid][S.NEAR_DUPLICATE_SET]]
    assert len(found) / len(planted) == 1.0, sorted(set(planted) - set(found))
    # precision: every flagged row is a copy or the row a copy was made from (clean digits hold no duplicates at this radius)
    truth = set(planted) | {p["source"] for p in planted.values()}
    assert len(set(flagged) & truth) / len(flagged) == 1.0, sorted(set(flagged) - truth)

    issues = v.read_table("issues").to_pylist()
    by_id = {r[S.ID]: r for r in issues}
    for cid, p in planted.items():
        assert by_id[cid]["duplicate_exact"] == p["exact"] and by_id[p["source"]]["duplicate_exact"] == p["exact"]
        assert by_id[cid]["duplicate_leak"] == p["leak"] and by_id[cid]["duplicate_conflict"] == p["conflict"]
    assert not any(r[S.IS_NEAR_DUPLICATE] for r in issues if r[S.ID] not in truth)

    # the catalog: one row per set, leaks and conflicts as planted
    sets = run_query(store, "dc", "SELECT ids, n_rows, leak, conflict FROM near_duplicates WHERE version = 1").to_pylist()
    assert len(sets) == 30 and all(s["n_rows"] == 2 for s in sets)
    by_copy = {next(i for i in s["ids"] if i.startswith("copy-")): s for s in sets}
    assert all(by_copy[cid]["leak"] == p["leak"] and by_copy[cid]["conflict"] == p["conflict"] for cid, p in planted.items())

    # manifest, history and the command's summary carry the counts
    info = v.manifest().audit.near_duplicates
    n_leak, n_conflict = sum(p["leak"] for p in planted.values()), sum(p["conflict"] for p in planted.values())
    assert (info.near_duplicate_rows, info.near_duplicate_sets, info.exact_duplicate_rows) == (60, 30, 30)
    assert (info.leaking_rows, info.conflicting_rows) == (2 * n_leak, 2 * n_conflict)
    (record,) = read_history(store, "dc")
    assert (record.near_duplicate_rows, record.leaking_rows, record.conflicting_rows) == (60, 2 * n_leak, 2 * n_conflict)
    history = run_query(store, "dc", "SELECT near_duplicate_sets FROM history").to_pylist()
    assert history == [{"near_duplicate_sets": 30}]
    assert f"near duplicates: 60 rows in 30 sets (30 rows with an exact copy), {2 * n_leak} rows in sets across splits" in output
    assert "Near-duplicate sets (leaks across splits and conflicting labels first; 10 of 30)" in output


def test_the_report_shows_each_set_side_by_side(digits_store):
    store, planted, _ = digits_store
    v = store.version("dc")
    page = (v.path.parent / "reports" / "v0001.html").read_text()
    section = page[page.index("<h2>Near duplicates</h2>") : page.index("<h2>Outliers</h2>")]  # the outliers come next
    assert "60 rows in 30 sets" in section and section.count("<tr>") == 1 + 20  # the header, then the first 20 sets
    assert section.count('<img src="data:image/png;base64,') == 40  # both rows of each set, as thumbnails
    summary = json.loads((v.path.parent / "reports" / "v0001.json").read_text())["near_duplicates"]
    first = summary["sets"][0]
    assert first["leak"] and {r["split"] for r in first["rows"]} == {"all", "test"}


def test_planted_and_natural_text_copies_in_fine_foods(tmp_path):
    foods = load_builtin("fine-foods")
    texts = foods["text"].to_pylist()
    rng = np.random.default_rng(1)
    sources = rng.choice(len(texts), 20, replace=False)
    copies = []
    for j, i in enumerate(sources):
        words = texts[i].split()
        if j % 3 == 0:
            k = int(rng.integers(len(words)))
            words[k] = "really" if words[k] != "really" else "truly"
            copies.append(" ".join(words))
        elif j % 3 == 1:
            copies.append(texts[i] + " Highly recommended.")
        else:
            copies.append("  " + texts[i].upper().replace(" ", "   ") + " ")  # exact once case and spacing are folded
    extra = pa.table({"id": [f"copy-{j:02d}" for j in range(20)], "label": foods["label"].take(pa.array(sources)), "split": ["test"] * 20, "text": copies})
    table = pa.concat_tables([foods.select(["id", "label", "split", "text"]), extra]).replace_schema_metadata(foods.schema.metadata)
    checks = check_neighbors(table)
    ids = table["id"].to_pylist()
    sets: dict[int, list[int]] = {}
    for row in np.flatnonzero(checks.set_id >= 0):
        sets.setdefault(int(checks.set_id[row]), []).append(int(row))
    # recall: every planted copy shares a set with its source
    assert all(checks.set_id[len(texts) + j] >= 0 and checks.set_id[len(texts) + j] == checks.set_id[i] for j, i in enumerate(sources))
    assert all(checks.exact[len(texts) + j] for j in range(2, 20, 3))
    # precision: every row in a set is nearly the same text as another row of its set (planted or the dataset's own copies)
    words = [t.casefold().split() for t in table["text"].to_pylist()]
    for members in sets.values():
        for a in members:
            best = max(difflib.SequenceMatcher(None, words[a], words[b], autojunk=False).ratio() for b in members if b != a)
            assert best > 0.9, (ids[a], [ids[b] for b in members])
    natural = [s for s in sets.values() if all(m < len(texts) for m in s)]
    assert len(natural) >= 20  # the reviews the dataset itself holds twice
    assert checks.info.leaking_rows >= 16  # its own test rows with a copy in training, besides the planted ones


def test_checks_can_be_left_out_and_need_the_inputs(tmp_path, digits):
    root = tmp_path / "s"
    out = CliRunner().invoke(main, ["audit", "digits", "--store", str(root), "--model", "logreg", "--folds", "3", "--no-prefect", "-q", "--no-data-checks"])
    assert out.exit_code == 0, out.output
    v = Store(root).version("digits")
    rows = v.read([S.IS_NEAR_DUPLICATE, S.NEAR_DUPLICATE_SET, S.IS_OUTLIER, S.OUTLIER_SCORE])
    assert all(rows[c].null_count == rows.num_rows for c in rows.column_names)  # null: not checked
    assert v.manifest().audit.near_duplicates is None and "near duplicates:" not in out.output
    assert run_query(Store(root), "digits", "SELECT count(*) AS n FROM near_duplicates")["n"][0].as_py() == 0
    assert "near_duplicate_rows" in read_history(Store(root), "digits")[0].to_json()
    with pytest.raises(InputError, match="near-duplicate-radius"):
        NeighborOptions(near_duplicate_radius=2.0)
    labels_only = S.with_info(digits.select(["id", "label"]), dataclasses.replace(S.info_of(digits), modality="none", inputs=[]))
    with pytest.raises(InputError, match="need the rows' inputs"):
        check_neighbors(labels_only)


def test_versions_from_before_the_check_still_answer(tmp_path, digits_store):
    """A store whose versions predate the near-duplicate columns: ``rows`` gives them as nulls and every view answers."""
    store, _, _ = digits_store
    old = Store(tmp_path / "old")
    v = store.version("dc")
    data = v.read().drop_columns([S.IS_NEAR_DUPLICATE, S.NEAR_DUPLICATE_SET, S.IS_OUTLIER, S.OUTLIER_SCORE])
    old.publish("dc", data, {}, None)
    got = run_query(old, "dc", "SELECT count(*) AS n, count(is_near_duplicate) AS checked, count(outlier_score) AS scored FROM rows").to_pylist()
    assert got == [{"n": data.num_rows, "checked": 0, "scored": 0}]
    assert named_query(old, "dc", "top_near_duplicates", version=1, limit=5).num_rows == 0
    assert run_query(old, "dc", "SELECT count(*) AS n FROM outliers").to_pylist() == [{"n": 0}]


def test_the_approximate_search_above_exact_max_finds_the_same_sets(monkeypatch):
    """Above ``EXACT_MAX`` rows the neighbours come from FAISS's HNSW graph: the same planted sets."""
    import labelq.detect.neighbors as nb

    table, _ = planted_digits()
    exact = check_neighbors(table)
    monkeypatch.setattr(nb, "EXACT_MAX", 100)
    approx = check_neighbors(table)
    assert np.array_equal(exact.set_id, approx.set_id) and approx.info.near_duplicate_sets == 30


def test_images_past_the_decode_budget_are_read_a_block_at_a_time_with_the_same_results(monkeypatch):
    """Past ``DECODE_BUDGET`` the image column is never decoded whole: hashed, then embedded (the mean, the
    PCA sample, the projection), a block of images at a time. The planted digits' sets, and Fashion-MNIST's
    outliers in its PCA space (784 pixels), come out as with the column decoded at once."""
    import labelq.detect.neighbors as nb

    table, _ = planted_digits()
    fashion = load_builtin("fashion-mnist").slice(0, 3000)
    whole = [check_neighbors(t) for t in (table, fashion)]
    decoded = []
    real_decode = nb.read_inputs
    monkeypatch.setattr(nb, "read_inputs", lambda examples: decoded.append(1) or real_decode(examples))
    monkeypatch.setattr(nb, "DECODE_BUDGET", 0)
    monkeypatch.setattr(nb, "DECODED_BLOCK_BYTES", 40_000)  # several blocks (625 digits, 51 Fashion-MNIST images), the last one short
    blocks = [check_neighbors(t) for t in (table, fashion)]
    assert not decoded  # never the whole column
    for a, b in zip(whole, blocks, strict=True):
        assert np.array_equal(a.set_id, b.set_id) and np.array_equal(a.is_outlier, b.is_outlier)
        np.testing.assert_allclose(a.outlier_score, b.outlier_score, atol=1e-5)
    assert blocks[0].info.near_duplicate_sets == 30


def test_tabular_copies_in_wine(tmp_path):
    """scikit-learn's wine measurements with 5 exact copies and 5 copies moved by 0.1% of each feature's spread."""
    from sklearn.datasets import load_wine

    from labelq.ingest import load_examples

    wine = load_wine(as_frame=True).frame.rename(columns={"target": "label"})
    rng = np.random.default_rng(0)
    sources = rng.choice(len(wine), 10, replace=False)
    copies = wine.iloc[sources].copy()
    features = [c for c in wine.columns if c != "label"]
    copies.iloc[5:, :-1] = copies.iloc[5:, :-1] + 0.001 * wine[features].std().to_numpy() * rng.standard_normal((5, len(features)))
    table = pa.concat_tables([pa.Table.from_pandas(wine, preserve_index=False), pa.Table.from_pandas(copies, preserve_index=False)])
    pq.write_table(table, tmp_path / "wine.parquet")
    checks = check_neighbors(load_examples(tmp_path / "wine.parquet"))
    n = len(wine)
    assert all(checks.set_id[n + j] >= 0 and checks.set_id[n + j] == checks.set_id[i] for j, i in enumerate(sources))  # recall 1.0
    assert set(np.flatnonzero(checks.set_id >= 0)) == set(sources) | set(range(n, n + 10))  # precision 1.0
    assert checks.exact[n : n + 5].all() and not checks.exact[n + 5 :].any() and checks.info.space == "standardized"


def _pixel_table(X: np.ndarray, y: np.ndarray) -> pa.Table:
    """Rows of pixels as numeric columns (a tabular dataset), ready for the checks."""
    from labelq.ingest import examples_from_raw
    from labelq.ingest.builtin import RawSource

    names = [f"px{j}" for j in range(X.shape[1])]
    table = pa.table({"id": [f"r{i:05d}" for i in range(len(y))], "label": y.astype(np.int64), **{n: X[:, j] for j, n in enumerate(names)}})
    return examples_from_raw(RawSource(table, "label", [str(c) for c in range(10)], "id", feature_columns=names))


def test_noisy_copies_among_near_constant_columns_are_found_as_datalab_finds_them():
    """Digits' 64 pixels as columns (the edge pixels are near-constant): 40 copies with N(0, 0.3) noise on every pixel.
    Divided by their own tiny spread, the edge pixels' noise hid every copy (2 of 80 rows found); Datalab finds all 80."""
    from cleanlab import Datalab
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(11)
    pick = rng.choice(len(X), 40, replace=False)
    X = np.vstack([X, np.clip(X[pick] + rng.normal(0, 0.3, (40, 64)), 0, 16)])
    y = np.concatenate([y, y[pick]])
    planted = np.zeros(len(y), bool)
    planted[pick] = planted[-40:] = True
    checks = check_neighbors(_pixel_table(X, y))
    found = checks.is_near_duplicate
    assert (found & planted).sum() == 80 and not (found & ~planted).any()
    lab = Datalab(data={"label": y}, label_name="label", verbosity=0)
    lab.find_issues(features=X, issue_types={"near_duplicate": {}})
    assert (lab.get_issues()["is_near_duplicate_issue"].to_numpy() == found).all()  # the same rows as cleanlab's Datalab
    # each copy is in one set with its original
    assert all(checks.set_id[p] == checks.set_id[len(y) - 40 + i] for i, p in enumerate(pick))


def test_columns_of_very_different_scales_with_a_near_constant_one():
    """Breast-cancer's 30 columns (scales 0.001 to 1,000) plus a column that is 0 in 99% of rows: 20 copies with 0.02 standard
    deviations of noise are found at precision 1.0, whatever the units."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(3)
    rare = np.zeros(len(X))
    rare[rng.choice(len(X), 6, replace=False)] = rng.uniform(1, 5, 6)
    X = np.column_stack([X, rare])
    pick = rng.choice(len(X), 20, replace=False)
    X = np.vstack([X, X[pick] + rng.normal(0, 0.02, (20, X.shape[1])) * X.std(axis=0)])
    y = np.concatenate([y, y[pick]])
    planted = np.zeros(len(y), bool)
    planted[pick] = planted[-20:] = True
    found = check_neighbors(_pixel_table(X, y)).is_near_duplicate
    assert (found & planted).sum() == 40 and not (found & ~planted).any()
    scaled = check_neighbors(_pixel_table(X * np.geomspace(1e-3, 1e3, X.shape[1]), y)).is_near_duplicate  # other units, the same rows
    assert (scaled == found).all()
