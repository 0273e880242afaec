"""The one place that loads ``sql/`` files and runs them on DuckDB.

Each published dataset has a catalog file ``<store>/datasets/<name>/catalog.duckdb`` holding views
over every version (``versions``, ``classes``, ``rows``, ``latest``, ``issues``, ``class_noise``,
``version_changes``) and the ``history`` table; ``diff.sql`` compares any two versions. Their SQL
lives in ``sql/<view>.sql`` and reads the versions through paths relative to the dataset folder
(``'v*/...'``), so the catalog file works from that folder in any DuckDB and a store can be moved.

labelq's own queries (``labelq query``, ``issues``, ``versions``, ``diff``) do not run on that file:
``connect`` builds the same views in memory over the dataset's verified versions, with absolute
paths, and then locks the connection down: file access only inside the dataset's folder, no
extensions installed or loaded, the configuration locked. ``run_query`` accepts only SELECT
statements (and EXPLAIN of one), so nothing a user types can write a file or read outside the dataset.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InputError, StoreError
from .io import current_umask

log = logging.getLogger(__name__)

# in dependency order; names are ours, never built from user input
VIEWS = ("versions", "classes", "rows", "latest", "issues", "near_duplicates", "outliers", "class_noise", "version_changes")
# columns of the rows' contract that versions published before them lack: ``rows`` gives them as nulls
LATER_COLUMNS = {"is_near_duplicate": "BOOLEAN", "near_duplicate_set": "VARCHAR[]", "is_outlier": "BOOLEAN", "outlier_score": "DOUBLE"}


MULTI_LABEL_TWINS = ("issues", "top_issues", "class_noise")  # for a multi-label dataset: sql/<name>_multilabel.sql
# label_name(names, label): a label's class name, or a tag list's names joined ("a, b"); the views call it
LABEL_NAME = {False: "names[label + 1]", True: "array_to_string(list_transform(label, lambda t: names[t + 1]), ', ')"}


def sql_name(name: str, multi_label: bool) -> str:
    """The SQL file of view or query ``name`` for a dataset of this kind."""
    return f"{name}_multilabel" if multi_label and name in MULTI_LABEL_TWINS else name


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


def _view_sql(
    view: str,
    folder: Path | None,
    groups: dict[str, tuple[list[str], list[str]]] | None = None,
    missing: dict[str, str] | None = None,
    multi_label: bool = False,
) -> str:
    """A view's SQL; with ``folder``, its relative ``'v*/...'`` paths made absolute under ``folder``.
    ``missing``: columns of ``LATER_COLUMNS`` that no version's data holds, added to ``rows`` as typed nulls.
    ``groups``: for each column-group file some version keeps apart from ``data/`` (``labelq.store.GROUPS``),
    its columns and those of them that some version's data also holds (versions published before the
    group was split off); ``rows`` joins each group back, and such a column is one column, from whichever
    file has it."""
    text = load_sql(sql_name(view, multi_label))
    if view == "rows" and groups:
        quote = lambda c: '"' + c.replace('"', '""') + '"'  # noqa: E731
        both = [c for _, shared in groups.values() for c in shared]
        select = "SELECT d.*" + (f" EXCLUDE ({', '.join(map(quote, both))})" if both else "")
        joins = ""
        for i, (file, (_, shared)) in enumerate(sorted(groups.items())):
            select += f", g{i}.* EXCLUDE ({', '.join(['group_version', 'id', *map(quote, shared)])})"
            select += "".join(f", coalesce(g{i}.{quote(c)}, d.{quote(c)}) AS {quote(c)}" for c in shared)
            group = load_sql("column_group").replace("column_group.parquet", file)
            joins += f"\nLEFT JOIN (\n{group}\n) g{i} ON g{i}.group_version = d.version AND g{i}.id = d.id"
        text = f"{select}\nFROM (\n{text}\n) d{joins}"
    if view == "rows" and missing:
        text = f"SELECT *, {', '.join(f'NULL::{t} AS {c}' for c, t in missing.items())}\nFROM (\n{text}\n)"
    return text if folder is None else text.replace("'v*/", _literal(str(folder.resolve()) + "/v*/")[:-1])


def _column_groups(store, name: str) -> tuple[dict[str, tuple[list[str], list[str]]], set[str]]:
    """For each group file any version holds: its columns, and those of them that some version's data also holds;
    and the columns of every version's data."""
    from .store import GROUPS

    folder = store.dataset_dir(name)
    data = {c for f in folder.glob("v*/data/*.parquet") for c in pq.read_schema(f).names}
    out = {}
    for file in GROUPS:
        found = sorted(folder.glob(f"v*/{file}"))
        if found:
            cols = sorted({c for f in found for c in pq.read_schema(f).names} - {"id"})
            out[file] = (cols, [c for c in cols if c in data])
    return out, data


def _create_views(con: duckdb.DuckDBPyConnection, store, name: str, folder: Path | None) -> None:
    """The catalog's views and its ``history`` table on ``con`` (paths relative, or absolute under ``folder``)."""
    groups, data = _column_groups(store, name)
    missing = {c: t for c, t in LATER_COLUMNS.items() if c not in data}
    multi_label = bool(store.multi_label(name))
    con.execute(f"CREATE OR REPLACE MACRO label_name(names, label) AS {LABEL_NAME[multi_label]}")
    for view in VIEWS:
        con.execute(f"CREATE OR REPLACE VIEW {view} AS\n{_view_sql(view, folder, groups, missing, multi_label)}")
    from .history import read_history

    runs = read_history(store, name)
    if runs:  # the audit history: a table rebuilt from the run records (JSON) of the versions
        history_records = pa.Table.from_pylist([{k: json.dumps(v) if isinstance(v, dict) else v for k, v in r.items()} for r in runs])  # noqa: F841 (read by DuckDB)
        con.execute(f"CREATE OR REPLACE TABLE history AS\n{load_sql('history')}")


def catalog_hook(store, version) -> None:
    """``Store.publish`` hook: rebuild the catalog of the dataset ``version`` was published to."""
    refresh_catalog(store, version.name)


def _catalog_state(store, name: str) -> str:
    """What a current catalog was built over: the published versions and labelq's views."""
    return json.dumps({"versions": [v.tag for v in store.versions(name)], "views": list(VIEWS)})


def refresh_catalog(store, name: str) -> Path:
    """(Re)build the catalog file of dataset ``name``, atomically (a new file renamed into place). Call with the dataset's lock held."""
    path = catalog_path(store, name)
    tmp = path.with_name(f".tmp-catalog-{uuid.uuid4().hex}.duckdb")
    try:
        con = duckdb.connect(str(tmp))
        try:
            con.execute(f"SET file_search_path = {_literal(str(store.dataset_dir(name).resolve()))}")
            _create_views(con, store, name, None)
            con.execute("CREATE OR REPLACE TABLE catalog_state AS SELECT $state AS state", {"state": _catalog_state(store, name)})
        finally:
            con.close()
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
    return path


def catalog_is_current(store, name: str) -> bool:
    """Whether the catalog file exists and was built over the versions published now (a kill after a
    publish, or an older labelq, leaves it stale)."""
    path = catalog_path(store, name)
    if not path.exists():
        return False
    try:
        con = duckdb.connect(str(path), read_only=True)
        try:
            return con.execute("SELECT state FROM catalog_state").fetchone()[0] == _catalog_state(store, name)
        finally:
            con.close()
    except duckdb.Error:
        return False


def heal_catalog(store, name: str) -> None:
    """Rebuild the catalog file if it is stale. A store this process cannot write keeps its old
    catalog (labelq's own queries do not read it)."""
    if catalog_is_current(store, name):
        return
    try:
        with store.lock(name):
            if not catalog_is_current(store, name):
                refresh_catalog(store, name)
                log.info("rebuilt the stale catalog of %s", name)
    except (OSError, duckdb.Error) as exc:
        log.warning("the catalog of %s is stale and could not be rebuilt here (%s)", name, exc)


@contextmanager
def connect(store, name: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A locked-down, in-memory connection holding the catalog's views over ``name``'s versions.

    Every version is verified first (a damaged one raises ``DamagedVersionError``). After the views
    are made, DuckDB may read files only inside the dataset's folder, installs and loads no
    extension, spills only to a private temporary folder, and refuses any change of these settings.
    """
    store.version(name, check=False)  # a clear error when nothing is published
    store.check_dataset(name)
    heal_catalog(store, name)
    folder = store.dataset_dir(name).resolve()
    with tempfile.TemporaryDirectory(prefix="labelq-duckdb-") as spill:
        con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
        try:
            _create_views(con, store, name, folder)
            con.execute(f"SET temp_directory = {_literal(spill)}")
            con.execute(f"SET allowed_directories = [{_literal(str(folder) + '/')}]")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            yield con
        finally:
            con.close()


def diff_versions(store, name: str, before: int | str, after: int | str) -> pa.Table:
    """The rows that differ between two published versions of ``name`` (``sql/diff.sql``)."""
    v1, v2 = store.version(name, before), store.version(name, after)
    return named_query(store, name, "diff", v1=v1.number, v2=v2.number)


_EXPLAIN = re.compile(r"^\s*EXPLAIN(\s+ANALY[SZ]E)?\s+", re.IGNORECASE)


def check_read_only(sql: str) -> str:
    """``sql`` if it is exactly one SELECT statement (or ``EXPLAIN [ANALYZE]`` of one), else ``InputError``.

    The type is read from DuckDB's own parser, and inside EXPLAIN too (``EXPLAIN ANALYZE`` runs its
    statement). SELECT covers ``WITH``, ``FROM``-first queries, ``VALUES``, ``DESCRIBE``, ``SHOW`` and ``SUMMARIZE``.
    """
    views = ", ".join(VIEWS)
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InputError(f"the query does not parse: {exc}", "check the SQL; the views are " + views) from exc
    if len(statements) != 1:
        raise InputError(f"give exactly one SQL statement, got {len(statements)}", "run one SELECT at a time")
    statement = statements[0]
    kind = statement.type.name
    if kind == "EXPLAIN":
        match = _EXPLAIN.match(statement.query)
        try:
            inner = duckdb.extract_statements(statement.query[match.end() :]) if match else []
        except duckdb.Error:
            inner = []
        if len(inner) != 1:
            raise InputError("only EXPLAIN [ANALYZE] followed by one SELECT is allowed", "write EXPLAIN SELECT ...")
        kind = inner[0].type.name
    if kind != "SELECT":
        article = "an" if kind[:1] in "AEIOU" else "a"
        raise InputError(f"only read-only queries are allowed, got {article} {kind} statement", "use SELECT over the views " + views)
    return sql


def run_query(store, name: str, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
    """Run one read-only statement (SELECT, or EXPLAIN of one) over the views of ``name``; returns an Arrow table."""
    check_read_only(sql)
    with connect(store, name) as con:
        try:
            return con.sql(sql, params=params or None).to_arrow_table()
        except duckdb.PermissionException as exc:
            raise InputError(
                f"the query tried to reach outside the dataset: {exc}",
                "query the views " + ", ".join(VIEWS) + "; labelq query reads only the dataset's own files",
            ) from exc
        except duckdb.Error as exc:
            raise InputError(f"the query failed: {exc}", "the views are " + ", ".join(VIEWS) + "; see sql/ for their columns") from exc


def named_query(store, name: str, query: str, **params: Any) -> pa.Table:
    """Run the query file ``sql/<query>.sql`` with named parameters bound (``$name``)."""
    with connect(store, name) as con:
        try:
            return con.sql(load_sql(sql_name(query, bool(store.multi_label(name)))), params=params).to_arrow_table()
        except duckdb.Error as exc:
            raise StoreError(f"the catalog query {query} failed on {name!r}: {exc}") from exc
