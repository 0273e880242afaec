"""The one place that loads ``sql/`` files and runs them on DuckDB.

Each published dataset has a catalog file ``<store>/datasets/<name>/catalog.duckdb`` holding views
over every version (``versions``, ``classes``, ``rows``, ``latest``, ``issues``, ``class_noise``,
``version_changes``); ``diff.sql`` compares any two versions.
Their SQL lives in ``sql/<view>.sql``; it reads the versions through paths relative to the dataset
folder (DuckDB's ``file_search_path``), so a store can be moved or copied as a whole.
"""

from __future__ import annotations

import json

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from .errors import InputError, StoreError

# in dependency order; names are ours, never built from user input
VIEWS = ("versions", "classes", "rows", "latest", "issues", "class_noise", "version_changes")
READ_ONLY_STATEMENTS = {"SELECT", "EXPLAIN", "PRAGMA"}


def _sql_files():
    """The folder of SQL files: the installed package data (``labelq._sql``), else ``sql/`` of a checkout."""
    try:
        packaged = resources.files("labelq._sql")  # a Traversable (a MultiplexedPath for a namespace package)
        if packaged.joinpath("rows.sql").is_file():
            return packaged
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parent.parent / "sql"


@cache
def load_sql(name: str) -> str:
    """Text of ``sql/<name>.sql``."""
    path = _sql_files().joinpath(f"{name}.sql")
    if not path.is_file():
        raise FileNotFoundError(f"labelq's SQL file {name}.sql is missing ({path}); reinstall labelq")
    return path.read_text()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def catalog_path(store, name: str) -> Path:
    return store.dataset_dir(name) / "catalog.duckdb"


def _set_search_path(con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    # SET takes no bound parameters; the folder is the store's own path, quoted as a literal
    con.execute(f"SET file_search_path = {_literal(str(folder.resolve()))}")


def refresh_catalog(store, name: str) -> Path:
    """(Re)create the catalog's views for dataset ``name``. Call with the dataset's lock held."""
    path = catalog_path(store, name)
    con = duckdb.connect(str(path))
    try:
        _set_search_path(con, store.dataset_dir(name))
        for view in VIEWS:
            con.execute(f"CREATE OR REPLACE VIEW {view} AS\n{load_sql(view)}")
        from .history import read_history

        runs = read_history(store, name)
        if runs:  # the audit history: a table rebuilt from the run records (JSON) of the versions
            history_records = pa.Table.from_pylist([{k: json.dumps(v) if isinstance(v, dict) else v for k, v in r.items()} for r in runs])  # noqa: F841 (read by DuckDB)
            con.execute(f"CREATE OR REPLACE TABLE history AS\n{load_sql('history')}")
    finally:
        con.close()
    return path


def connect(store, name: str) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the catalog of ``name`` (built first if it is missing)."""
    store.version(name)  # raises a clear error when nothing is published
    path = catalog_path(store, name)
    if not path.exists():
        with store.lock(name):
            refresh_catalog(store, name)
    con = duckdb.connect(str(path), read_only=True)
    have = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    if set(VIEWS) - have:  # a catalog made by an older labelq: add the views it lacks
        con.close()
        with store.lock(name):
            refresh_catalog(store, name)
        con = duckdb.connect(str(path), read_only=True)
    _set_search_path(con, store.dataset_dir(name))
    return con


def diff_versions(store, name: str, before: int | str, after: int | str) -> pa.Table:
    """The rows that differ between two published versions of ``name`` (``sql/diff.sql``)."""
    v1, v2 = store.version(name, before), store.version(name, after)
    return named_query(store, name, "diff", v1=v1.number, v2=v2.number)


def run_query(store, name: str, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
    """Run one read-only statement (SELECT / EXPLAIN) over the catalog of ``name``; returns an Arrow table."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InputError(f"the query does not parse: {exc}", "check the SQL; the views are " + ", ".join(VIEWS)) from exc
    if len(statements) != 1:
        raise InputError(f"give exactly one SQL statement, got {len(statements)}")
    kind = statements[0].type.name
    if kind not in READ_ONLY_STATEMENTS:
        raise InputError(f"only read-only queries are allowed, got a {kind} statement", "use SELECT over the views " + ", ".join(VIEWS))
    con = connect(store, name)
    try:
        return con.sql(sql, params=params or None).to_arrow_table()
    except duckdb.Error as exc:
        raise InputError(f"the query failed: {exc}", "the views are " + ", ".join(VIEWS) + "; see sql/ for their columns") from exc
    finally:
        con.close()


def named_query(store, name: str, query: str, **params: Any) -> pa.Table:
    """Run the query file ``sql/<query>.sql`` with named parameters bound (``$name``)."""
    con = connect(store, name)
    try:
        return con.sql(load_sql(query), params=params).to_arrow_table()
    except duckdb.Error as exc:
        raise StoreError(f"the catalog query {query} failed on {name!r}: {exc}") from exc
    finally:
        con.close()
