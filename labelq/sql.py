"""The one place that loads ``sql/`` files and runs them on DuckDB.

Each published dataset has a catalog file ``<store>/datasets/<name>/catalog.duckdb`` holding views
over every version (``versions``, ``classes``, ``rows``, ``latest``, ``issues``, ``class_noise``,
``version_changes``) and the ``history`` table; ``diff.sql`` compares any two versions. Their SQL
lives in ``sql/<view>.sql`` and reads the versions through paths relative to the dataset folder
(``'v*/...'``), so the catalog file works from that folder in any DuckDB and a store can be moved.

labelq's own queries (``labelq query``, ``issues``, ``versions``, ``diff``) do not run on that file:
``connect`` builds the same views in memory over the dataset's verified versions, with absolute
paths, and then locks the connection down: file access only inside the dataset's folder, no
extensions installed or loaded, a memory limit, a thread count and a cap on spilled bytes
(``QueryLimits``), the configuration locked. ``run_query`` accepts only SELECT statements (and EXPLAIN
of one) that call none of DuckDB's functions and tables about the host (settings, secrets, extensions,
temporary files, the system catalog: ``HOST_FUNCTIONS``), so nothing a user types can write a file,
read outside the dataset or learn the machine's paths. ``stream_query`` streams the result a batch at a
time, stops at ``max_rows`` and interrupts the statement past its ``timeout``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InputError, StoreError
from .io import current_umask
from .labelkind import LabelKind, kind_named

log = logging.getLogger(__name__)

# in dependency order; names are ours, never built from user input
VIEWS = ("versions", "classes", "rows", "latest", "issues", "near_duplicates", "outliers", "class_noise", "version_changes")
# views over files that only some datasets' versions hold (several annotators a row): made where a version has the file
OPTIONAL_VIEWS = {"consensus": "consensus.parquet", "annotators": "annotators.parquet", "annotator_pairs": "annotator_pairs.parquet"}
# columns of the rows' contract that versions published before them lack: ``rows`` gives them as nulls
LATER_COLUMNS = {"is_near_duplicate": "BOOLEAN", "near_duplicate_set": "VARCHAR[]", "is_outlier": "BOOLEAN", "outlier_score": "DOUBLE"}


# label_name(names, label): a label's class name, or a tag list's names joined ("a, b"); the views call it


def sql_name(name: str, kind: LabelKind | None) -> str:
    """The SQL file of view or query ``name`` for a dataset of this ``kind`` of label: ``<name><kind.sql_suffix>.sql``
    where the kind has its own variant, else ``<name>.sql``."""
    variant = f"{name}{kind.sql_suffix}" if kind is not None and kind.sql_suffix else name
    return variant if variant != name and _sql_files().joinpath(f"{variant}.sql").is_file() else name


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
    kind: LabelKind | None = None,
) -> str:
    """A view's SQL; with ``folder``, its relative ``'v*/...'`` paths made absolute under ``folder``.
    ``missing``: columns of ``LATER_COLUMNS`` that no version's data holds, added to ``rows`` as typed nulls.
    ``groups``: for each column-group file some version keeps apart from ``data/`` (``labelq.writer.GROUPS``),
    its columns and those of them that some version's data also holds (versions published before the
    group was split off); ``rows`` joins each group back, and such a column is one column, from whichever
    file has it."""
    text = load_sql(sql_name(view, kind))
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
    from .writer import GROUPS

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
    kind = store.label_kind(name)
    con.execute(f"CREATE OR REPLACE MACRO label_name(names, label) AS {(kind or kind_named('single')).sql_label_name}")
    held = [view for view, file in OPTIONAL_VIEWS.items() if next(store.dataset_dir(name).glob(f"v*/{file}"), None) is not None]
    for view in (*VIEWS, *held, *(kind.extra_views if kind else ())):
        con.execute(f"CREATE OR REPLACE VIEW {view} AS\n{_view_sql(view, folder, groups, missing, kind)}")
    from .history import read_history

    runs = read_history(store, name)
    if runs:  # the audit history: a table rebuilt from the run records (JSON) of the versions
        history_records = pa.Table.from_pylist([{k: json.dumps(v) if isinstance(v, dict) else v for k, v in r.to_json().items()} for r in runs])  # noqa: F841 (read by DuckDB)
        con.execute(f"CREATE OR REPLACE TABLE history AS\n{load_sql('history')}")


def catalog_hook(store, version) -> None:
    """``Store.publish`` hook: rebuild the catalog of the dataset ``version`` was published to."""
    refresh_catalog(store, version.name)


def _catalog_state(store, name: str) -> str:
    """What a current catalog was built over: the published versions, labelq's views and their SQL (a catalog
    built by a labelq whose views read differently is rebuilt by the next command)."""
    kind = store.label_kind(name)
    views = (
        *VIEWS,
        *OPTIONAL_VIEWS,
        *(kind.extra_views if kind else ()),
        "column_group",
        "history",
    )  # each with its kinds' variants (<view>_<suffix>.sql): no manifest is read
    files = sorted(f.name for f in _sql_files().iterdir() if f.name.endswith(".sql") and any(f.name[:-4] == v or f.name.startswith(f"{v}_") for v in views))
    digest = hashlib.sha256("".join(load_sql(f[:-4]) for f in files).encode()).hexdigest()[:16]
    return json.dumps({"versions": [v.tag for v in store.versions(name)], "views": list(VIEWS), "sql": digest})


def _build_catalog(con: duckdb.DuckDBPyConnection, store, name: str) -> None:
    """What the catalog file holds, built on ``con``: the views over relative paths, the history and the state."""
    con.execute(f"SET file_search_path = {_literal(str(store.dataset_dir(name).resolve()))}")
    _create_views(con, store, name, None)
    con.execute("CREATE OR REPLACE TABLE catalog_state AS SELECT $state AS state", {"state": _catalog_state(store, name)})


def refresh_catalog(store, name: str) -> Path:
    """(Re)build the catalog file of dataset ``name``, atomically (a new file renamed into place). Call with the dataset's lock held."""
    path = catalog_path(store, name)
    tmp = path.with_name(f".tmp-catalog-{uuid.uuid4().hex}.duckdb")
    try:
        con = duckdb.connect(str(tmp))
        try:
            _build_catalog(con, store, name)
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


_EXCLUDE = re.compile(r"EXCLUDE \(([^()]*)\)")


def _catalog_contents(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """What a catalog holds that a tool opening it is served: its views' and macros' definitions, and its tables' rows."""
    out: dict[str, Any] = {}
    for view, text in con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall():
        out[f"view {view}"] = _EXCLUDE.sub(lambda m: "EXCLUDE (" + ", ".join(sorted(m.group(1).split(", "))) + ")", text)  # DuckDB keeps a set: any order
    for fn, text in con.execute("SELECT function_name, macro_definition FROM duckdb_functions() WHERE function_type LIKE '%macro' AND NOT internal").fetchall():
        out[f"macro {fn}"] = text
    for (table,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT internal").fetchall():
        out[f"table {table}"] = con.sql(f'SELECT * FROM "{table}"').to_arrow_table()
    for kind, query in (
        ("sequence", "SELECT sequence_name FROM duckdb_sequences()"),
        ("type", "SELECT type_name FROM duckdb_types() WHERE NOT internal"),
        ("index", "SELECT index_name FROM duckdb_indexes()"),
    ):
        for (obj,) in con.execute(query).fetchall():
            out[f"{kind} {obj}"] = obj
    return out


def catalog_problems(store, name: str) -> list[str]:
    """How ``name``'s catalog file differs from the one labelq builds over the versions published now (``[]``: it
    is labelq's, or there is none yet): a view, macro or table that was added, removed or changed by hand would be
    served to every tool that opens the file, so ``labelq verify`` rebuilds the definitions and compares them."""
    path = catalog_path(store, name)
    if not path.exists():
        return []
    try:
        con = duckdb.connect(str(path), read_only=True)
        try:
            found = _catalog_contents(con)
        finally:
            con.close()
    except duckdb.Error as exc:
        return [f"{path}: not a readable DuckDB catalog ({exc})"]
    con = duckdb.connect(":memory:")
    try:
        _build_catalog(con, store, name)
        expected = _catalog_contents(con)
    finally:
        con.close()
    problems = []
    for key in sorted(set(found) | set(expected)):
        if key not in expected:
            problems.append(f"{path}: {key} is not labelq's (added by hand)")
        elif key not in found:
            problems.append(f"{path}: {key} is missing")
        elif not (found[key].equals(expected[key]) if isinstance(expected[key], pa.Table) else found[key] == expected[key]):
            problems.append(f"{path}: {key} differs from labelq's definition over the published versions (edited by hand, or stale)")
    return problems


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


@dataclass(frozen=True)
class QueryLimits:
    """Bounds on one query: ``timeout`` seconds of wall time (None: none) before the statement is
    interrupted, ``max_rows`` rows streamed before it is stopped (None: all), DuckDB's ``memory_limit``,
    its ``threads``, and ``max_temp_directory_size`` for what it spills to disk. labelq's own queries run
    with ``INTERNAL``; ``labelq query`` with the defaults (its options change them)."""

    timeout: float | None = 60.0
    max_rows: int | None = 10_000
    memory: str = "2GB"
    threads: int = 2
    spill: str = "4GB"

    def __post_init__(self) -> None:
        if self.timeout is not None and not self.timeout > 0:
            raise InputError(f"--timeout must be a number of seconds above 0, got {self.timeout!r}", "e.g. --timeout 60")
        if self.max_rows is not None and (not isinstance(self.max_rows, int) or self.max_rows < 1):
            raise InputError(
                f"--max-rows must be a whole number of at least 1 (0 on the command line: all rows), got {self.max_rows!r}", "e.g. --max-rows 1000"
            )
        if not re.fullmatch(r"\s*\d+(\.\d+)?\s*(B|[KMGT]i?B)\s*", self.memory, re.IGNORECASE):
            raise InputError(f"--memory-limit must be a size such as 2GB or 512MiB, got {self.memory!r}", "e.g. --memory-limit 2GB")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise InputError(f"threads must be at least 1, got {self.threads!r}", "e.g. 2")


INTERNAL = QueryLimits(timeout=None, max_rows=None)
SPILL_PREFIX = "labelq-duckdb-"  # <tmp>/labelq-duckdb-<pid>-<random>: a connection's spill folder


def _sweep_spill_folders() -> None:
    """Remove the spill folders of labelq processes that are gone (a killed query cannot remove its own)."""
    for folder in Path(tempfile.gettempdir()).glob(SPILL_PREFIX + "*"):
        pid = folder.name[len(SPILL_PREFIX) :].split("-")[0]
        if not pid.isdigit() or folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass


@contextmanager
def connect(store, name: str, limits: QueryLimits = INTERNAL) -> Iterator[duckdb.DuckDBPyConnection]:
    """A locked-down, in-memory connection holding the catalog's views over ``name``'s versions.

    Every version is verified first (a damaged one raises ``DamagedVersionError``). After the views
    are made, DuckDB may read files only inside the dataset's folder, installs and loads no
    extension, uses at most ``limits``' memory and threads, spills at most ``limits.spill`` bytes, only
    to a private temporary folder, and refuses any change of these settings.
    """
    store.version(name, check=False)  # a clear error when nothing is published
    store.check_dataset(name)
    heal_catalog(store, name)
    folder = store.dataset_dir(name).resolve()
    _sweep_spill_folders()
    with tempfile.TemporaryDirectory(prefix=f"{SPILL_PREFIX}{os.getpid()}-") as spill:
        con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
        try:
            _create_views(con, store, name, folder)
            con.execute(f"SET temp_directory = {_literal(spill)}")
            con.execute(f"SET memory_limit = {_literal(limits.memory)}")
            con.execute(f"SET max_temp_directory_size = {_literal(limits.spill)}")
            con.execute(f"SET threads = {int(limits.threads)}")
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

# DuckDB's functions and tables that describe the host rather than the data (settings, secrets, extensions,
# files, the catalog with the views' absolute paths) or run SQL from a string; refused in ``labelq query``
HOST_FUNCTIONS = re.compile(
    r"^(duckdb_.*|pragma_.*|sqlite_.*|pg_.*|current_setting|which_secret|getenv|query|query_table|json_execute_serialized_sql|"
    r"current_database|current_catalog|current_schema|current_schemas|icu_.*|enable_.*|disable_.*|checkpoint|force_checkpoint)$",
    re.IGNORECASE,
)
HOST_SCHEMAS = ("information_schema", "pg_catalog", "system", "temp")


def _references(tree: Any, out: set[str]) -> set[str]:
    """Every function and table name a statement's parse tree (``json_serialize_sql``) refers to."""
    if isinstance(tree, dict):
        if "function_name" in tree:
            out.add(str(tree["function_name"]))
        if tree.get("type") == "BASE_TABLE":
            out.update(f"{part}." for part in (tree.get("catalog_name"), tree.get("schema_name")) if part)
            out.add(str(tree.get("table_name")))
        for value in tree.values():
            _references(value, out)
    elif isinstance(tree, list):
        for value in tree:
            _references(value, out)
    return out


def _check_host_references(select: str) -> None:
    """Refuse a SELECT that calls a ``HOST_FUNCTIONS`` function or reads a ``HOST_SCHEMAS`` table."""
    con = duckdb.connect(":memory:")
    try:
        tree = json.loads(con.execute("SELECT json_serialize_sql($q)", {"q": select}).fetchone()[0])
    finally:
        con.close()
    if tree.get("error"):
        raise InputError(f"the query cannot be checked: {tree.get('error_message')}", "write one plain SELECT over the views " + ", ".join(VIEWS))
    names = _references(tree, set())
    refused = sorted(n for n in names if HOST_FUNCTIONS.match(n.rstrip(".")) or n.rstrip(".").lower() in HOST_SCHEMAS)
    if refused:
        raise InputError(
            f"the query uses {', '.join(n.rstrip('.') for n in refused)}: labelq query serves the dataset's views, not what DuckDB knows of the machine",
            "query the views " + ", ".join(VIEWS) + " (DuckDB's settings, secrets, extensions and system tables are not served)",
        )


def check_read_only(sql: str) -> str:
    """``sql`` if it is exactly one SELECT statement (or ``EXPLAIN [ANALYZE]`` of one) that calls no
    ``HOST_FUNCTIONS``, else ``InputError``.

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
    kind, select = statement.type.name, statement.query
    if kind == "EXPLAIN":
        match = _EXPLAIN.match(statement.query)
        try:
            inner = duckdb.extract_statements(statement.query[match.end() :]) if match else []
        except duckdb.Error:
            inner = []
        if len(inner) != 1:
            raise InputError("only EXPLAIN [ANALYZE] followed by one SELECT is allowed", "write EXPLAIN SELECT ...")
        kind, select = inner[0].type.name, inner[0].query
    if kind != "SELECT":
        article = "an" if kind[:1] in "AEIOU" else "a"
        raise InputError(f"only read-only queries are allowed, got {article} {kind} statement", "use SELECT over the views " + views)
    _check_host_references(select)
    return sql


class QueryRows:
    """The batches of a running query (``stream_query``): iterate them once; ``rows`` counts what came,
    ``truncated`` says whether ``max_rows`` stopped it."""

    def __init__(self, reader: pa.RecordBatchReader, limits: QueryLimits, fail) -> None:
        self.reader, self.limits, self._fail = reader, limits, fail
        self.schema = reader.schema
        self.rows, self.truncated = 0, False

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while True:
            try:
                batch = self.reader.read_next_batch()
            except StopIteration:
                return
            except (duckdb.Error, pa.ArrowException) as exc:
                raise self._fail(exc) from exc
            room = None if self.limits.max_rows is None else self.limits.max_rows - self.rows
            if room is not None and batch.num_rows >= room:
                self.truncated = batch.num_rows > room or self._more()
                batch = batch.slice(0, room)
                self.rows += batch.num_rows
                if batch.num_rows:
                    yield batch
                return
            self.rows += batch.num_rows
            yield batch

    def _more(self) -> bool:
        """Whether a row follows the ``max_rows``-th (the stream is stopped either way)."""
        try:
            while True:
                if self.reader.read_next_batch().num_rows:
                    return True
        except StopIteration:
            return False
        except (duckdb.Error, pa.ArrowException):
            return True

    def table(self) -> pa.Table:
        return pa.Table.from_batches(list(self), schema=self.schema)


@contextmanager
def stream_query(store, name: str, sql: str, params: dict[str, Any] | None = None, limits: QueryLimits = QueryLimits()) -> Iterator[QueryRows]:
    """Run one read-only statement over the views of ``name`` (``check_read_only``) within ``limits``; yields
    its rows a batch at a time (``QueryRows``). Past ``limits.timeout`` the statement is interrupted and
    ``InputError`` says so; so it does when the statement needs more than ``limits.memory``."""
    check_read_only(sql)
    timed_out = threading.Event()
    views = ", ".join(VIEWS)
    home = str(Path.home())

    def fail(exc: Exception) -> InputError:
        text = str(exc)
        for path, shown in ((str(store.dataset_dir(name).resolve()), "<dataset>"), (tempfile.gettempdir(), "<tmp>"), (home, "<home>")):
            text = text.replace(path, shown) if len(path) > 1 else text
        if timed_out.is_set() or isinstance(exc, duckdb.InterruptException):
            return InputError(
                f"the query ran longer than {limits.timeout:g} s and was stopped", "narrow it (WHERE, LIMIT), or give more time: --timeout SECONDS"
            )
        if isinstance(exc, duckdb.OutOfMemoryException) or "Out of Memory" in text or "max_temp_directory_size" in text:
            return InputError(
                f"the query needs more memory than allowed ({limits.memory}, and {limits.spill} spilled): {text}",
                "narrow it (WHERE, LIMIT), or allow more: --memory-limit 8GB",
            )
        if isinstance(exc, duckdb.PermissionException) or "Permission Error" in text:
            return InputError(
                f"the query tried to reach outside the dataset: {text}", f"query the views {views}; labelq query reads only the dataset's own files"
            )
        return InputError(f"the query failed: {text}", f"the views are {views}; see sql/ for their columns")

    with connect(store, name, limits) as con:
        timer = threading.Timer(limits.timeout, lambda: (timed_out.set(), con.interrupt())) if limits.timeout else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        reader = None
        try:
            try:
                reader = con.sql(sql, params=params or None).to_arrow_reader(2048)
            except (duckdb.Error, pa.ArrowException) as exc:
                raise fail(exc) from exc
            yield QueryRows(reader, limits, fail)
        finally:
            if timer is not None:
                timer.cancel()
            if reader is not None:
                reader.close()


def run_query(store, name: str, sql: str, params: dict[str, Any] | None = None, limits: QueryLimits = INTERNAL) -> pa.Table:
    """Run one read-only statement (SELECT, or EXPLAIN of one) over the views of ``name``; returns an Arrow table
    (at most ``limits.max_rows`` rows; none by default)."""
    with stream_query(store, name, sql, params, limits) as rows:
        return rows.table()


def named_query(store, name: str, query: str, **params: Any) -> pa.Table:
    """Run the query file ``sql/<query>.sql`` with named parameters bound (``$name``)."""
    with connect(store, name) as con:
        try:
            return con.sql(load_sql(sql_name(query, store.label_kind(name))), params=params).to_arrow_table()
        except duckdb.Error as exc:
            raise StoreError(f"the catalog query {query} failed on {name!r}: {exc}") from exc
