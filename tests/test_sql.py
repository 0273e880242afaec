"""The DuckDB catalog: views over every version, read-only queries, a store that can be moved."""

from __future__ import annotations

import shutil

import pytest

from labelq.errors import InputError
from labelq.pipeline import AuditConfig, audit
from labelq.sql import VIEWS, named_query, run_query
from labelq.store import Store


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("sqlstore")
    audit(AuditConfig.from_options(source="digits", name="dg", store=str(root), model="logreg", n_folds=3))
    audit(AuditConfig.from_options(source="digits", name="dg", store=str(root), model="logreg", n_folds=4))  # other predictions: a second version
    return Store(root)


def test_every_view_answers(published):
    for view in VIEWS:
        n = run_query(published, "dg", f"SELECT count(*) AS n FROM {view}")["n"][0].as_py()
        assert n == 0 if view == "near_duplicates" else n > 0  # digits holds no duplicates (tests/test_duplicates.py plants some)


def test_views_agree_with_the_published_rows(published):
    v = published.version("dg")
    rows = v.read()
    n_issues = int(sum(rows["is_label_issue"].to_pylist()))
    assert run_query(published, "dg", "SELECT count(*) AS n FROM rows")["n"][0].as_py() == 2 * rows.num_rows
    assert run_query(published, "dg", "SELECT count(*) AS n FROM latest")["n"][0].as_py() == rows.num_rows
    issues = run_query(published, "dg", "SELECT * FROM issues WHERE version = 2")
    assert issues.num_rows == n_issues and issues["issue_rank"].to_pylist() == list(range(1, n_issues + 1))
    assert all(n == str(label) for n, label in zip(issues["given_name"].to_pylist(), issues["given_label"].to_pylist()))
    noise = run_query(published, "dg", "SELECT sum(n_rows) AS n, sum(n_flagged) AS f FROM class_noise WHERE version = 2")
    assert noise["n"][0].as_py() == rows.num_rows and noise["f"][0].as_py() == n_issues
    versions = run_query(published, "dg", "SELECT version, parent_version FROM versions ORDER BY version").to_pylist()
    assert versions == [{"version": 1, "parent_version": None}, {"version": 2, "parent_version": 1}]
    top = named_query(published, "dg", "top_issues", version=2, limit=2)
    assert top.num_rows == min(2, n_issues)


@pytest.mark.parametrize("sql", ["DELETE FROM rows", "CREATE TABLE t AS SELECT 1", "COPY (SELECT 1) TO 'x.csv'", "SELECT 1; SELECT 2", "ATTACH 'x.db'"])
def test_only_one_read_only_statement_is_run(published, sql):
    with pytest.raises(InputError, match="read-only|exactly one"):
        run_query(published, "dg", sql)


def test_bad_sql_is_a_clear_error(published):
    with pytest.raises(InputError, match="does not parse"):
        run_query(published, "dg", "SELEC 1")
    with pytest.raises(InputError, match="(?s)the query failed.*the views are"):
        run_query(published, "dg", "SELECT nope FROM rows")


def test_a_moved_store_still_answers(published, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(published.root, moved)
    shutil.rmtree(published.root / "datasets" / "dg" / "v0001")  # the copy must not read the original
    try:
        assert run_query(Store(moved), "dg", "SELECT count(DISTINCT version) AS n FROM rows")["n"][0].as_py() == 2
    finally:
        shutil.copytree(moved / "datasets" / "dg" / "v0001", published.root / "datasets" / "dg" / "v0001")


def test_diff_between_versions_and_version_changes_view(tmp_path):
    """A real audit, a re-label and a review: the diff query, the view and the CLI agree with the rows."""
    import json as _json

    from click.testing import CliRunner

    from labelq.cli import main
    from labelq.pipeline import audit
    from labelq.relabel import relabel
    from labelq.sql import diff_versions, run_query
    from labelq.store import Store

    root = tmp_path / "store"
    audit(source="digits", store=str(root), model="logreg", detector="confident_learning")  # cleanlab's flags: some of them sure enough to correct
    relabel(name="digits", store=str(root))
    store = Store(root)
    v1, v2 = store.version("digits", 1).read(), store.version("digits", 2).read()
    fixed = v2["corrected_label"].is_valid().to_numpy(zero_copy_only=False)
    d = diff_versions(store, "digits", 1, "v0002").to_pylist()
    assert {r["change"] for r in d} == {"relabeled"} and len(d) == int(fixed.sum()) > 0
    assert all(r["label_before"] != r["label_after"] for r in d)
    changes = run_query(store, "digits", "SELECT * FROM version_changes").to_pylist()
    assert changes == [{"version": 2, "parent_version": 1, "added": 0, "removed": 0, "relabeled": int(fixed.sum()), "newly_flagged": 0, "no_longer_flagged": 0}]
    # a new audit of a smaller source: removed rows and changed flags show up
    import pyarrow.parquet as pq

    pq.write_table(v1.slice(0, 1500).drop_columns(["is_label_issue"]), tmp_path / "part.parquet")
    audit(source=str(tmp_path / "part.parquet"), name="digits", store=str(root), model="logreg")
    d = diff_versions(store, "digits", 2, 3).to_pylist()
    assert sum(r["change"] == "removed" for r in d) == 297
    r = CliRunner().invoke(main, ["diff", "digits", "1", "3", "--store", str(root), "--format", "json"])
    assert r.exit_code == 0 and len(_json.loads(r.output)) >= 297
    r = CliRunner().invoke(main, ["diff", "digits", "1", "9", "--store", str(root)])
    assert r.exit_code == 2 and "has no version" in r.output
    # an old catalog without the new view gets it on the next connection
    import duckdb

    con = duckdb.connect(str(root / "datasets" / "digits" / "catalog.duckdb"))
    con.execute("DROP VIEW version_changes")
    con.close()
    assert run_query(store, "digits", "SELECT count(*) AS n FROM version_changes").to_pylist()[0]["n"] >= 1


def test_the_catalog_file_answers_from_its_folder_and_from_elsewhere(published, tmp_path, monkeypatch):
    """As the README says: open catalog.duckdb with the duckdb package from the dataset's folder (relative globs give
    'v0001/data/...', with no separator before the version), or from anywhere with file_search_path. Every view answers."""
    import duckdb

    from labelq.relabel import relabel

    store = Store(tmp_path / "copy")
    shutil.copytree(published.root, store.root)
    relabel(name="dg", store=str(store.root))  # a re-label: group files joined back by version
    published, folder = store, store.dataset_dir("dg")
    expected = {view: run_query(published, "dg", f"SELECT count(*) AS n FROM {view}")["n"][0].as_py() for view in VIEWS}
    expected_versions = run_query(published, "dg", "SELECT version, count(*) AS n FROM rows GROUP BY version ORDER BY version").to_pylist()

    def answers(con) -> None:
        for view in VIEWS:
            assert con.execute(f"SELECT count(*) FROM {view}").fetchone()[0] == expected[view], view
        got = [{"version": v, "n": n} for v, n in con.execute("SELECT version, count(*) FROM rows GROUP BY version ORDER BY version").fetchall()]
        assert got == expected_versions and [r["version"] for r in got] == [1, 2, 3]
        assert con.execute("SELECT count(*) FROM latest WHERE label_source IS NOT NULL OR label_source IS NULL").fetchone()[0] == expected["latest"]
        assert con.execute("SELECT count(*) FROM history").fetchone()[0] == 2

    monkeypatch.chdir(folder)
    con = duckdb.connect("catalog.duckdb", read_only=True)
    try:
        answers(con)
    finally:
        con.close()
    monkeypatch.chdir(tmp_path)
    con = duckdb.connect(str(folder / "catalog.duckdb"), read_only=True)
    try:
        con.execute(f"SET file_search_path = '{folder}'")
        answers(con)
    finally:
        con.close()
