"""`labelq query` reads only the dataset's own files and writes nothing: hostile statements are refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from labelq.cli import main
from labelq.errors import InputError
from labelq.io import file_sha256
from labelq.pipeline import AuditConfig, audit
from labelq.sql import SPILL_PREFIX, VIEWS, QueryLimits, check_read_only, run_query, stream_query
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


def test_nothing_about_the_machine_is_served(setup):
    """Settings, secrets, extensions and the system catalog hold the home folder, the spill folder and the
    store's path: every way to read them is refused, and no refusal names a path."""
    store, _ = setup
    home, spill = str(Path.home()), tempfile.gettempdir()
    for sql in [
        "SELECT * FROM duckdb_settings()",
        "SELECT current_setting('home_directory')",
        "SELECT current_setting('temp_directory') AS t",
        "SELECT * FROM duckdb_extensions()",
        "SELECT which_secret('s3://bucket/x', 's3')",
        "SELECT * FROM duckdb_secrets()",
        "SELECT * FROM duckdb_temporary_files()",
        "SELECT sql FROM duckdb_views()",
        "SELECT * FROM duckdb_databases()",
        "SELECT view_definition FROM information_schema.views",
        "SELECT * FROM pg_catalog.pg_settings",
        "SELECT * FROM pragma_database_list",
        "SELECT * FROM pragma_version()",
        "SELECT * FROM sqlite_master",
        "SELECT getenv('HOME')",
        "SELECT * FROM query('SELECT * FROM duckdb_settings()')",
        "SELECT * FROM query_table('duckdb_settings')",
        "EXPLAIN SELECT * FROM duckdb_settings()",
        "WITH s AS (SELECT * FROM duckdb_settings()) SELECT value FROM s",
        "SELECT (SELECT value FROM duckdb_settings() WHERE name = 'temp_directory') AS leak FROM latest LIMIT 1",
        "SELECT system.main.current_setting('home_directory')",
    ]:
        with pytest.raises(InputError, match="serves the dataset's views") as info:
            run_query(store, "dg", sql)
        assert home not in str(info.value) and spill not in str(info.value), sql


def test_queries_have_limits(setup, tmp_path):
    """A huge result stops at --max-rows, a statement that never ends stops at --timeout, one that needs
    more memory than --memory-limit fails with that named; csv streams, so memory stays flat."""
    store, _ = setup
    rows = run_query(store, "dg", "SELECT * FROM range(1000000000000)", limits=QueryLimits(max_rows=5))
    assert rows["range"].to_pylist() == [0, 1, 2, 3, 4]
    with stream_query(store, "dg", "SELECT * FROM range(10)", limits=QueryLimits(max_rows=10)) as exact:
        assert exact.table().num_rows == 10 and not exact.truncated  # exactly max_rows: nothing was cut

    out = CliRunner().invoke(main, ["query", "dg", "SELECT * FROM range(1000000000000)", "--store", str(store.root), "--max-rows", "100", "--format", "csv"])
    assert out.exit_code == 0 and out.stdout.splitlines()[1:] == [str(i) for i in range(100)] and "stopped after 100 rows" in out.stderr

    recursive = "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t"
    started = time.monotonic()
    with pytest.raises(InputError, match="ran longer than 2 s"):
        run_query(store, "dg", recursive, limits=QueryLimits(timeout=2))
    assert time.monotonic() - started < 30
    out = CliRunner().invoke(main, ["query", "dg", recursive, "--store", str(store.root), "--timeout", "1"])
    assert out.exit_code == 2 and "--timeout" in out.output

    with pytest.raises(InputError, match="more memory than allowed"):
        run_query(store, "dg", "SELECT list(range) AS l FROM range(200000000)", limits=QueryLimits(memory="64MB", spill="64MB"))

    # ten million rows as CSV, streamed by a real process (its peak memory measured by a parent of its own): far below the 4.3 GB of the whole result
    cmd = [sys.executable, "-m", "labelq.cli", "query", "dg", "SELECT range AS n, range * 2 AS m FROM range(10000000)", "--store", str(store.root)]
    cmd += ["--format", "csv", "--max-rows", "0"]
    parent = "import resource, subprocess, sys; n = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, check=True).stdout.count(b'\\n'); print(n, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    lines, peak_kib = map(int, subprocess.run([sys.executable, "-c", parent, *cmd], capture_output=True, text=True, check=True).stdout.split())
    assert lines == 10_000_001 and peak_kib < 1_000_000


def test_a_killed_query_leaves_no_spill_folder(setup):
    store, _ = setup
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labelq.cli",
            "query",
            "dg",
            "SELECT * FROM range(1000000000000)",
            "--store",
            str(store.root),
            "--max-rows",
            "0",
            "--format",
            "csv",
        ],
        stdout=subprocess.DEVNULL,
    )
    mine = lambda: list(Path(tempfile.gettempdir()).glob(f"{SPILL_PREFIX}{proc.pid}-*"))  # noqa: E731
    for _ in range(300):
        if mine():
            break
        time.sleep(0.1)
    assert mine(), "the query never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert mine()  # SIGKILL runs no clean-up
    run_query(store, "dg", "SELECT 1")
    assert not mine()  # the next query removes the folders of processes that are gone
