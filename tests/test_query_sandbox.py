"""`labelq query` reads only the dataset's own files and writes nothing: hostile statements are refused."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from labelq.cli import main
from labelq.errors import InputError
from labelq.io import file_sha256
from labelq.pipeline import AuditConfig, audit
from labelq.sql import VIEWS, check_read_only, run_query
from labelq.store import Store

SECRET = "TOPSECRET-4711"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("sandbox")
    store = Store(root / "store")
    audit(AuditConfig.from_options(source="digits", name="dg", store=str(store.root), model="logreg", n_folds=3))
    audit(AuditConfig.from_options(source="digits", name="dg", store=str(store.root), model="logreg", n_folds=4))  # other predictions: a second version
    outside = root / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text(f"a,b\n{SECRET},1\n")
    (outside / "db").mkdir()
    (outside / "db" / "schema.sql").write_text("CREATE TABLE pwned AS SELECT 1;")
    (outside / "db" / "load.sql").write_text("")
    return store, outside


def _hostile(store: Store, outside) -> list[str]:
    v1 = store.version("dg", 1)
    part = v1.path / "data" / "part-00000.parquet"
    ds = store.dataset_dir("dg").resolve()
    secret = outside / "secret.csv"
    rel = os.path.relpath(secret)
    out = outside / "written.csv"
    return [
        # writes, hidden inside EXPLAIN (ANALYZE runs its statement)
        f"EXPLAIN ANALYZE COPY (SELECT * REPLACE ((label + 1) % 3 AS label) FROM read_parquet('{part}')) TO '{part}' (FORMAT parquet)",
        f"EXPLAIN COPY (SELECT 1) TO '{out}'",
        f"explain analyse copy (select 1) to '{out}'",
        "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1",
        f"EXPLAIN ANALYZE EXPORT DATABASE '{outside / 'exp'}'",
        "EXPLAIN ANALYZE INSERT INTO rows VALUES (1)",
        f"/* comment */ EXPLAIN ANALYZE COPY rows TO '{out}'",
        f"COPY rows TO '{out}'",
        f"COPY (SELECT * FROM latest) TO '{part}' (FORMAT parquet)",
        f"EXPORT DATABASE '{outside / 'exp'}'",
        f"IMPORT DATABASE '{outside / 'db'}'",
        f"PRAGMA import_database('{outside / 'db'}')",
        f"ATTACH '{outside / 'x.duckdb'}'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        f"SELECT 1; COPY (SELECT 1) TO '{out}'",
        f"SELECT * FROM query('COPY (SELECT 1) TO ''{out}''')",
        # reads outside the dataset: table functions, replacement scans, CTEs, subqueries, relative paths
        f"SELECT * FROM read_csv('{secret}')",
        f"SELECT * FROM read_csv_auto('{secret}')",
        f"SELECT * FROM read_text('{secret}')",
        f"SELECT * FROM read_blob('{secret}')",
        f"SELECT * FROM sniff_csv('{secret}')",
        f"SELECT * FROM '{secret}'",
        f"FROM '{secret}'",
        f"SELECT * FROM glob('{outside}/*')",
        "SELECT * FROM glob('/root/*')",
        "SELECT * FROM read_csv('/etc/passwd')",
        f"WITH s AS (SELECT * FROM read_text('{secret}')) SELECT content FROM s",
        f"SELECT (SELECT content FROM read_text('{secret}')) AS leak",
        f"SELECT id FROM rows WHERE id IN (SELECT content FROM read_text('{secret}'))",
        f"SELECT * FROM read_text('{rel}')",
        f"SELECT * FROM read_text('{ds}/../../../outside/secret.csv')",
        f"SELECT * FROM read_text('{ds}/v0001/../../../../outside/secret.csv')",
        f"SELECT * FROM read_text('{ds}/../../../outside/*.csv')",
        "SELECT * FROM read_parquet('http://127.0.0.1:9/x.parquet')",
        "SELECT * FROM read_parquet('s3://bucket/x.parquet')",
        f"EXPLAIN ANALYZE SELECT * FROM read_text('{secret}')",
    ]


def test_hostile_statements_are_refused_and_change_nothing(setup):
    store, outside = setup
    statements = _hostile(store, outside)
    assert len(statements) >= 20
    before = {p: file_sha256(p) for p in store.dataset_dir("dg").rglob("*.parquet")}
    for sql in statements:
        with pytest.raises(InputError) as info:
            table = run_query(store, "dg", sql)
            pytest.fail(f"ran: {sql!r} -> {table.to_pylist()[:3]}")
        assert SECRET not in str(info.value), sql
    assert {p: file_sha256(p) for p in store.dataset_dir("dg").rglob("*.parquet")} == before
    assert sorted(p.name for p in outside.iterdir()) == ["db", "secret.csv"]  # nothing written outside
    assert all(not problems for problems in store.verify("dg").values())


def test_views_and_ordinary_queries_still_work(setup):
    store, _ = setup
    for view in VIEWS:
        n = run_query(store, "dg", f"SELECT count(*) AS n FROM {view}")["n"][0].as_py()
        assert n == 0 if view == "near_duplicates" else n > 0  # digits holds no duplicates
    t = run_query(store, "dg", "SELECT version, count(*) AS n, sum(is_label_issue::INT) AS flagged FROM rows GROUP BY ALL ORDER BY version")
    assert t["n"].to_pylist() == [1797, 1797]
    assert run_query(store, "dg", "SELECT count(*) AS n FROM history")["n"][0].as_py() == 2
    assert run_query(store, "dg", "EXPLAIN SELECT * FROM latest").num_rows >= 1
    assert run_query(store, "dg", "DESCRIBE latest").num_rows > 5
    assert run_query(store, "dg", "WITH x AS (FROM issues) SELECT count(*) AS n FROM x")["n"][0].as_py() >= 0


def test_statement_types_are_named_with_the_right_article():
    with pytest.raises(InputError, match="got an INSERT statement"):
        check_read_only("INSERT INTO t VALUES (1)")
    with pytest.raises(InputError, match="got a COPY statement"):
        check_read_only("EXPLAIN ANALYZE COPY (SELECT 1) TO 'x.csv'")


def test_the_cli_refuses_a_write_hidden_in_explain(setup):
    store, outside = setup
    part = store.version("dg", 1).path / "data" / "part-00000.parquet"
    before = file_sha256(part)
    sql = f"EXPLAIN ANALYZE COPY (SELECT * REPLACE ((label + 1) % 3 AS label) FROM read_parquet('{part}')) TO '{part}' (FORMAT parquet)"
    out = CliRunner().invoke(main, ["query", "dg", sql, "--store", str(store.root)])
    assert out.exit_code == 2 and "only read-only queries" in out.output and "COPY" in out.output
    assert file_sha256(part) == before
