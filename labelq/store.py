"""The versioned dataset store.

``<root>/datasets/<name>/v<NNNN>/`` holds a published version: ``data/part-00000.parquet`` (the
audited rows without their inputs, class names in the schema metadata), ``payload.parquet`` (``id``
and the input columns: images, texts, features), ``scores.parquet`` (``id``, ``label_score``,
``suggested_label``, ``issue_rank``), ``soft_labels.parquet`` (after a re-label),
``pred_probs.parquet``, ``issues.parquet`` and ``manifest.json``. A version is built in a
``.tmp-*`` folder and renamed into place while holding the dataset's lock (``labelq.writer.VersionWriter``
writes; this module reads, checks, locks and decides), so readers never see half a version, two writers
never get the same number, and a version is never modified or overwritten afterwards. ``<root>/cache/``
holds what can be recomputed (``Store.fold_cache``, ``Store.judge_cache``, ...).

Versions share what did not change: a file whose bytes (sha256) equal a file of an earlier version
is a hard link to it, and so is a group file (``GROUPS``) with the same values as its parent's; a
re-label, which changes labels but not images or scores, stores its small data file and links the
payload, scores, soft labels and pred_probs. Every version folder still holds all its files (it stays
self-describing, and ``labelq verify`` checks each), and removing a version (``Store.gc``) never
breaks another: a linked file lives while any version links it. An audit whose files all equal the
latest version's publishes nothing; its run record goes to ``history/`` (``publish(skip_unchanged=True)``).

**No symbolic links inside a dataset.** A version is what its own folder holds: a version folder, a
file or a folder inside one that is a symbolic link (even to an identical copy) makes the version
damaged, and every command that reads or writes the dataset refuses it, naming the link (``links_in``).
The store's root and a dataset's own folder may be links (a store on another disk).

The root is ``--store``, else ``$LABELQ_STORE``, else ``./data/store``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from . import schema as S
from .errors import DamagedVersionError, InputError, NotLatestError, StoreError
from .io import CACHE, FOLDS, JUDGE_VOTES, atomic_write_text, default_root
from .labelkind import LabelKind, kind_of
from .manifest import Manifest
from .writer import (
    CHECKSUM_KEY,
    GROUPS,
    MANIFEST,
    NOISE,
    PAYLOAD,
    RUN_RECORD,
    VersionWriter,
    cached_sha256,
    json_default,
    manifest_checksum,
)

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
VERSION_RE = re.compile(r"^v(\d{4,})$")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name) or name in (".", ".."):
        raise InputError(f"invalid dataset name {name!r}", "pass --name with letters, digits, '.', '_' and '-' (at most 128), starting with a letter or digit")
    return name


@dataclass(frozen=True)
class Version:
    name: str
    number: int
    path: Path

    @property
    def tag(self) -> str:
        return f"v{self.number:04d}"

    @property
    def data_glob(self) -> str:
        return str(self.path / "data" / "*.parquet")

    def data_files(self) -> list[Path]:
        """The Parquet files of ``data/``, in order (read one by one: ``pq.ParquetDataset`` would import
        ``pyarrow.dataset`` and pandas, ~58 MB, to read what is one file)."""
        files = sorted(f for f in (self.path / "data").glob("*.parquet") if not f.name.startswith((".", "_")))
        if not files:
            raise DamagedVersionError(f"{self.name} {self.tag} has no data files", _repair_fix(self), [str(self.path / "data")])
        return files

    def manifest(self) -> Manifest:
        """The typed manifest (``labelq.manifest.Manifest``)."""
        return Manifest.from_json(self.manifest_json())

    def manifest_json(self) -> dict:
        """``manifest.json`` as written: the on-disk contract that the catalog and other tools read."""
        try:
            return json.loads((self.path / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DamagedVersionError(f"the manifest of {self.name} {self.tag} is unreadable: {exc}", _repair_fix(self), [str(self.path / MANIFEST)]) from exc

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """The rows (all columns, or ``columns``), the group files' columns joined back in row order."""
        groups = self.groups()
        wanted = columns if columns is not None else self.column_names(groups)
        apart = {c: f for f, cols in groups.items() for c in cols}
        columns_here = list(dict.fromkeys([S.ID, *(c for c in wanted if c not in apart)]))  # the id at least: the rows' count
        table = pa.concat_tables([pq.ParquetFile(f).read(columns=columns_here) for f in self.data_files()])
        if any(c in apart for c in wanted):
            for f in groups:
                part = [c for c in wanted if apart.get(c) == f]
                extra = pq.read_table(self.path / f, columns=part) if part else None
                for name in part:
                    table = table.append_column(extra.schema.field(name), extra[name])
            table = S.with_info(table.select(wanted), S.info_of(table))  # Hugging Face features of all the columns
        return table.select(wanted)

    def groups(self) -> dict[str, list[str]]:
        """The column groups this version keeps apart from ``data/`` (``GROUPS``): file -> its columns but ``id``."""
        return {f: [c for c in pq.read_schema(self.path / f).names if c != S.ID] for f in GROUPS if (self.path / f).is_file()}

    @property
    def num_rows(self) -> int:
        """The version's rows, from its data files' footers."""
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.data_files())

    def rows_at(self, positions: Sequence[int], columns: list[str] | None = None) -> pa.Table:
        """The rows at ``positions`` (in that order; all columns, or ``columns``), read from the row groups that
        hold them in ``data/`` and the group files: one row of a million-row version without reading the rest."""
        import numpy as np

        groups = self.groups()
        wanted = columns if columns is not None else self.column_names(groups)
        apart = {c: f for f, cols in groups.items() for c in cols}
        positions = np.asarray(positions, dtype=np.int64)
        here = list(dict.fromkeys([S.ID, *(c for c in wanted if c not in apart)]))  # the id at least: the rows' count
        files = [pq.ParquetFile(f) for f in self.data_files()]
        starts = np.cumsum([0] + [f.metadata.num_rows for f in files])
        if len(positions) and (positions.min() < 0 or positions.max() >= starts[-1]):
            raise IndexError(
                f"{self.name} {self.tag} has {starts[-1]} rows, not row {int(positions.max() if positions.max() >= starts[-1] else positions.min())}"
            )
        parts, where = [], []  # each file's rows, and which entries of ``positions`` they are
        for i, f in enumerate(files):
            mine = np.flatnonzero((positions >= starts[i]) & (positions < starts[i + 1]))
            if len(mine):
                parts.append(_take_rows(f, positions[mine] - starts[i], here))
                where.append(mine)
        table = pa.concat_tables(parts) if parts else files[0].schema_arrow.empty_table().select(here)
        if parts:
            table = table.take(pa.array(np.argsort(np.concatenate(where))))
        for f in groups:
            part = [c for c in wanted if apart.get(c) == f]
            if part:
                extra = _take_rows(pq.ParquetFile(self.path / f), positions, part)
                for name in part:
                    table = table.append_column(extra.schema.field(name), extra[name])
        return S.with_info(table.select(wanted), S.info_of(files[0].schema_arrow))

    def payload_rows(self, ids: Sequence[str]) -> pa.Table:
        """``id`` and the inputs of the rows ``ids`` (in row order), read from the row groups of
        ``payload.parquet`` that hold them, a page at a time: a report's top rows without the other
        images and texts. Reading Fashion-MNIST's one 36 MB row group whole cost 139 MB at the report's
        peak; streamed in batches (``buffer_size``, no pre-buffering), 17 MB."""
        import numpy as np
        import pyarrow.compute as pc

        source = pq.ParquetFile(self.path / PAYLOAD, buffer_size=2**20, pre_buffer=False)
        wanted = pa.array(list(ids), pa.string())
        rows = np.flatnonzero(pc.is_in(source.read(columns=[S.ID])[S.ID], value_set=wanted).to_numpy(zero_copy_only=False))
        ends = np.cumsum([source.metadata.row_group(g).num_rows for g in range(source.metadata.num_row_groups)])
        groups = np.unique(np.searchsorted(ends, rows, side="right")).tolist()
        parts = [b.filter(pc.is_in(b[S.ID], value_set=wanted)) for b in source.iter_batches(batch_size=1024, row_groups=groups)] if groups else []
        return pa.Table.from_batches([b for b in parts if b.num_rows], schema=source.schema_arrow)

    def payload_columns(self) -> list[str]:
        """The input columns stored in ``payload.parquet`` (none for versions without one)."""
        return self.groups().get(PAYLOAD, [])

    def column_names(self, groups: dict[str, list[str]] | None = None) -> list[str]:
        """The rows' column names in order (read from the Parquet schemas, no rows); ``groups``: ``self.groups()``, when already read."""
        names = pq.read_schema(self.data_files()[0]).names
        apart = [c for cols in (self.groups() if groups is None else groups).values() for c in cols]
        if not apart:
            return names
        order = self.manifest_json().get("columns") or [*names, *apart]
        return [c for c in order if c in names or c in apart]

    def read_table(self, name: str) -> pa.Table:
        return pq.read_table(self.path / f"{name}.parquet")

    def noise(self) -> tuple[Any, Any] | None:
        """Confident learning's K x K estimates ``(joint, noise_matrix)`` as numpy arrays, from
        ``noise.parquet`` (from the manifest for versions published before it); None without them."""
        import numpy as np

        raw = self.manifest_json()
        if (self.path / NOISE).is_file():
            table = pq.ParquetFile(self.path / NOISE).read(columns=["joint", "noise_rate"])  # as the rows are read: no pyarrow.dataset import
            k = len(raw["class_names"])
            return tuple(table[c].to_numpy().reshape(k, k) for c in ("joint", "noise_rate"))  # type: ignore[return-value]
        if raw.get("joint") is None or raw.get("noise_matrix") is None:
            return None
        return np.asarray(raw["joint"], dtype=np.float64), np.asarray(raw["noise_matrix"], dtype=np.float64)

    def verify(self) -> list[str]:
        """Every problem of this version, each naming its file; empty when the version is intact.

        Checks: no symbolic link is the version's folder or lies inside it; the manifest reads and
        matches its checksum; every file it lists exists and has the listed sha256; every Parquet file's
        footer reads; the data's row count and class names agree with the manifest; no file was added
        that the manifest does not list.
        """
        links = links_in(self.path)
        if links:
            return [
                f"{link}: a symbolic link (to {os.readlink(link)}); a version holds its own files: replace it with the real file or folder" for link in links
            ]
        mpath = self.path / MANIFEST
        try:
            m = json.loads(mpath.read_text())
        except (OSError, ValueError) as exc:
            return [f"{mpath}: unreadable manifest ({exc})"]
        if not isinstance(m, dict) or not isinstance(m.get("files"), dict):
            return [f"{mpath}: not a labelq manifest (no 'files' table)"]
        problems = []
        if CHECKSUM_KEY in m and m[CHECKSUM_KEY] != manifest_checksum(m):
            problems.append(f"{mpath}: edited after publishing (its content no longer matches its checksum)")
        if m.get("name") != self.name or m.get("version") != self.number:
            problems.append(f"{mpath}: describes {m.get('name')!r} version {m.get('version')!r}, not {self.name} {self.tag}")
        rows, class_names, group_rows = 0, None, {}
        for rel, digest in sorted(m["files"].items()):
            f = self.path / rel
            if not f.is_file():
                problems.append(f"{f}: missing")
                continue
            if cached_sha256(f) != digest:
                problems.append(f"{f}: content differs from the sha256 in the manifest (truncated or modified)")
                continue
            if rel.endswith(".parquet"):
                try:
                    meta = pq.read_metadata(f)
                except Exception as exc:  # pyarrow raises several types for unreadable files
                    problems.append(f"{f}: not a readable Parquet file ({exc})")
                    continue
                if rel.startswith("data/"):
                    rows += meta.num_rows
                    class_names = S.info_of(meta.schema.to_arrow_schema()).class_names
                elif rel in GROUPS:
                    group_rows[rel] = meta.num_rows
        if not problems:
            if rows != m.get("rows"):
                problems.append(f"{mpath}: says {m.get('rows')!r} rows, the data holds {rows}")
            for rel, n in group_rows.items():
                if n != rows:
                    problems.append(f"{self.path / rel}: holds {n} rows, the data {rows}")
            if class_names is not None and class_names != m.get("class_names"):
                problems.append(f"{mpath}: its class names {m.get('class_names')!r} differ from the data's {class_names!r}")
        allowed = set(m["files"]) | {MANIFEST, RUN_RECORD}
        extra = sorted(str(p.relative_to(self.path)) for p in self.path.rglob("*") if p.is_file() and str(p.relative_to(self.path)) not in allowed)
        problems += [f"{self.path / rel}: not part of the version (added after publishing)" for rel in extra]
        return problems

    def check(self) -> Version:
        """This version, or ``DamagedVersionError`` naming its damaged files and how to repair it."""
        problems = self.verify()
        if problems:
            more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
            raise DamagedVersionError(f"{self.name} {self.tag} is damaged: {problems[0]}{more}", _repair_fix(self), problems)
        return self


def links_in(path: Path) -> list[Path]:
    """``path`` if it is a symbolic link, else every symbolic link below it (never followed)."""
    if path.is_symlink():
        return [path]
    found = []
    for folder, dirs, names in os.walk(path):
        found += [Path(folder) / n for n in [*dirs, *names] if (Path(folder) / n).is_symlink()]
    return sorted(found)


def _repair_fix(version: Version) -> str:
    return (
        f"restore {version.path} from a backup or copy of the store; if it cannot be restored, move that folder out of the store "
        f"(the other versions stay valid). `labelq verify {version.name}` lists every damaged file"
    )


class Store:
    """A folder of versioned datasets. ``Store(root).publish(name, tables, manifest)`` adds a version."""

    def __init__(self, root: str | Path | Store | None = None) -> None:
        if isinstance(root, Store):  # labelq.audit(store=Store(...)): the same store, not a folder named after the object
            root = root.root
        self.root = Path(root) if root is not None else default_root()

    @property
    def cache_dir(self) -> Path:
        """The root of the caches (``labelq.io``'s layout: ``FOLDS``, ``EMBEDDINGS``, ``PRED_PROBS``, ``JUDGE_VOTES``)."""
        return self.root / CACHE

    @property
    def fold_cache(self) -> Path:
        return self.cache_dir / FOLDS

    @property
    def judge_cache(self) -> Path:
        return self.cache_dir / JUDGE_VOTES

    def dataset_dir(self, name: str) -> Path:
        return self.root / "datasets" / check_name(name)

    def datasets(self) -> list[str]:
        base = self.root / "datasets"
        return sorted(p.name for p in base.iterdir() if p.is_dir() and self.versions(p.name)) if base.exists() else []

    def versions(self, name: str) -> list[Version]:
        d = self.dataset_dir(name)
        if not d.exists():
            return []
        found = [(int(m.group(1)), p) for p in d.iterdir() if p.is_dir() and (m := VERSION_RE.match(p.name))]
        return [Version(name, n, p) for n, p in sorted(found)]

    def version(self, name: str, version: int | str | None = None, check: bool = True) -> Version:
        """A published version (the latest when ``version`` is None; ``3``, ``'3'`` or ``'v0003'`` otherwise).

        With ``check`` (the default) its files are verified first: a damaged version raises
        ``DamagedVersionError`` naming the files, and is never served.
        """
        versions = self.versions(name)
        if not versions:
            known = self.datasets()
            raise StoreError(
                f"no published versions of {name!r} in {self.root}",
                f"run `labelq audit SOURCE --name {name}` first" + (f"; published datasets: {known}" if known else ""),
            )
        if version is None:
            return versions[-1].check() if check else versions[-1]
        try:
            number = int(str(version).lstrip("v"))
        except ValueError as exc:
            raise InputError(f"invalid version {version!r}", "use a number such as 3 or v0003") from exc
        for v in versions:
            if v.number == number:
                return v.check() if check else v
        raise StoreError(f"{name!r} has no version {version!r}", f"published versions: {[v.tag for v in versions]}")

    def verify(self, name: str) -> dict[str, list[str]]:
        """``{tag: problems}`` for every version of ``name`` (an empty list: intact)."""
        return {v.tag: v.verify() for v in self.versions(name)}

    def check_dataset(self, name: str) -> None:
        """Raise ``DamagedVersionError`` for a symbolic link inside ``name``'s folder (``check_links``), or for the
        first damaged version of ``name`` (the catalog reads them all)."""
        self.check_links(name)
        for v in self.versions(name):
            v.check()

    def check_links(self, name: str) -> None:
        """Raise ``DamagedVersionError`` naming the symbolic links inside ``name``'s folder (its versions, review
        logs, samples, catalog): labelq never follows one to read, write or remove what lies outside the store."""
        d = self.dataset_dir(name)
        links = [p for child in (sorted(d.iterdir()) if d.is_dir() else []) for p in links_in(child)]
        if links:
            shown = ", ".join(f"{p} -> {os.readlink(p)}" for p in links[:5]) + (f" and {len(links) - 5} more" if len(links) > 5 else "")
            raise DamagedVersionError(
                f"{name} holds symbolic links: {shown}",
                "a store holds its own files: replace each link with the real file or folder (cp -a --dereference), or remove it",
                [str(p) for p in links],
            )

    def label_kind(self, name: str) -> LabelKind | None:
        """The kind of label of ``name``'s versions (all of them have one: ``check_label_kind``); None before any version."""
        existing = self.versions(name)
        return kind_of(existing[-1].manifest()) if existing else None

    def check_label_kind(self, name: str, kind: LabelKind) -> None:
        """Refuse rows of another kind of label than the dataset's versions (tag lists against one class a row): its
        versions are read as one table, whose label column has one type, and the kind decides how it is read."""
        have = self.label_kind(name)
        if have not in (None, kind):
            raise InputError(
                f"{name}'s versions carry {have.what} (label kind {have.name!r}), and these rows carry {kind.what} ({kind.name!r})",
                "publish them under another name (--name)",
            )

    def _folders(self, name: str | None) -> list[Path]:
        return [self.root, self.root / "datasets", self.cache_dir, self.fold_cache] + ([self.dataset_dir(name)] if name else [])

    def check_folders(self, name: str | None = None) -> None:
        """Refuse a store whose folders are files (writes nothing: a configuration is checked with it)."""
        for folder in self._folders(name):
            if folder.exists() and not folder.is_dir():
                raise InputError(f"the store path {folder} is a file, not a folder", "pass --store with a folder (or move that file away)")

    def check_writable(self, name: str | None = None) -> None:
        """Refuse, before any work, a store that cannot take a new version: a path that is a file, or no write
        permission (a probe file is written and removed in each folder)."""
        self.check_folders(name)
        folders = self._folders(name)
        try:
            for folder in folders:
                if name and folder == self.dataset_dir(name) and not folder.exists():
                    continue  # made when the first version is published: a refused audit leaves no empty dataset behind
                folder.mkdir(parents=True, exist_ok=True)
                probe = folder / f".write-probe-{uuid.uuid4().hex}"
                probe.touch()
                probe.unlink()
        except OSError as exc:
            raise InputError(
                f"the store {self.root} cannot be written to ({exc.strerror}: {exc.filename})",
                "pass --store with a folder you can write to (or set $LABELQ_STORE), or fix its permissions",
            ) from exc

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Exclusive lock on one dataset (an ``flock`` on ``.lock``; released if the process dies)."""
        d = self.dataset_dir(name)
        d.mkdir(parents=True, exist_ok=True)
        with open(d / ".lock", "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def publish(
        self,
        name: str,
        data: pa.Table,
        tables: dict[str, pa.Table | Path],
        manifest: Manifest | None = None,
        parent: int | None = None,
        expect_latest: int | None = None,
        records: Callable[[Manifest], dict[str, dict]] | None = None,
        hooks: Sequence[Callable[[Store, Version], None]] = (),
        skip_unchanged: bool = False,
    ) -> Version:
        """Write a new version atomically and return it.

        ``data`` is the audited rows; ``tables`` are extra contract tables (``pred_probs``, ``issues``)
        written beside it (a ``Path``: a published file carried unchanged, linked); ``manifest`` holds
        the job's sections, and the store fills in the identity
        (name, number, rows, classes, files, hashes). The version number is the next free one; ``parent``
        (default: the latest version) is recorded. With ``expect_latest``, publishing fails
        (``NotLatestError``, nothing written) unless that is still the latest version once the lock is
        held: for changes that are only valid on top of the version they were made from.
        ``records(manifest)`` (called with the lock held) returns JSON files to write into the version
        (the audit's run record): they appear together with the version or not at all.
        ``hooks(store, version)`` run after the rename, with the lock held, to update what is derived from
        the versions (``labelq.sql.catalog_hook``); a failing hook is logged, and the version stands.
        The data's input columns (``inputs`` of its metadata) go to ``payload.parquet`` and its soft labels
        to ``soft_labels.parquet`` (``column_groups``); a file equal to one of an earlier version (the same
        bytes, or for a group file the same content as the parent's or the latest's) is a hard link to it.
        ``skip_unchanged``: when every file equals the latest version's, nothing is published, ``records``
        go to ``history/<run_id>.json``, and the latest version is returned.
        """
        with self.lock(name):
            existing = self._before_publish(name, data, expect_latest)
            number = existing[-1].number + 1 if existing else 1
            if parent is None and existing:
                parent = existing[-1].number
            writer = VersionWriter(self.dataset_dir(name), name, number, parent, existing)
            try:
                files = writer.write(data, tables)
                if skip_unchanged and existing and files == {r: h for r, h in existing[-1].manifest_json()["files"].items() if r.endswith(".parquet")}:
                    writer.discard()
                    return self._record_unchanged(existing[-1], records, hooks)
                writer.stamp(manifest, records)
                version = Version(name, number, writer.commit())
            except BaseException:
                writer.discard()
                raise
            self._run_hooks(hooks, version, f"published {name} {version.tag}")
            return version

    def _before_publish(self, name: str, data: pa.Table, expect_latest: int | None) -> list[Version]:
        """With the dataset's lock held: remove what killed writers left, refuse a change made on a version that is no
        longer the latest, a damaged dataset and rows of the other kind (nothing written); the versions published."""
        for stale in self.dataset_dir(name).glob(".tmp-*"):  # nobody else can be writing while we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        existing = self.versions(name)
        if expect_latest is not None and (not existing or existing[-1].number != expect_latest):
            latest = existing[-1].tag if existing else "none"
            raise NotLatestError(
                f"{name} v{expect_latest:04d} is no longer the latest version (now {latest})", "redo the change on the latest version; nothing was written"
            )
        self.check_links(name)  # the catalog reads every version: refuse now, with nothing written, rather than publish into a broken dataset
        for v in existing:
            v.check()
        self.check_label_kind(name, kind_of(data))
        return existing

    def _record_unchanged(self, latest: Version, records: Callable[[Manifest], dict[str, dict]] | None, hooks) -> Version:
        """An audit that changed nothing: its run records go to ``history/``, and ``latest`` stands."""
        for obj in (records(latest.manifest()) if records else {}).values():
            obj["published"] = False
            atomic_write_text(self.dataset_dir(latest.name) / "history" / f"{obj['run_id']}.json", json.dumps(obj, indent=1, default=json_default))
        log.info("%s %s already holds these rows, predictions and results: published nothing, recorded the run", latest.name, latest.tag)
        self._run_hooks(hooks, latest, f"recorded a run of {latest.name}")
        return latest

    def _run_hooks(self, hooks: Sequence[Callable[[Store, Version], None]], version: Version, done: str) -> None:
        """Update what is derived from the versions; a failing hook is logged (the change stands, and the next reader rebuilds it)."""
        for hook in hooks:
            try:
                hook(self, version)
            except Exception as exc:
                log.warning("%s, but %s failed (%s); the next command that reads it rebuilds it", done, hook.__name__, exc)

    def gc(self, name: str, keep: int, hooks: Sequence[Callable[[Store, Version], None]] = ()) -> list[str]:
        """Remove all but the ``keep`` latest versions of ``name``; returns the removed tags.

        Never breaks a kept version: shared files are hard links, which live while any version links
        them. Each removed version's run record moves to ``history/`` first (the history keeps every
        run) and its reports go with it; review logs and calibration samples stay. ``hooks(store, latest)``
        then update what is derived from the versions (``labelq.sql.catalog_hook``), as after ``publish``.
        """
        if not isinstance(keep, int) or keep < 1:
            raise InputError(f"--keep must be a whole number of at least 1, got {keep!r}", "keep the latest version at least: --keep 1")
        removed = []
        with self.lock(name):
            d = self.dataset_dir(name)
            self.check_links(name)  # never remove through a link, nor leave one half-renamed
            for v in self.versions(name)[:-keep]:
                record = v.path / RUN_RECORD
                if record.is_file():
                    run = json.loads(record.read_text())
                    atomic_write_text(d / "history" / f"{run['run_id']}.json", record.read_text())
                doomed = d / f".tmp-gc-{v.tag}-{uuid.uuid4().hex}"
                os.rename(v.path, doomed)  # gone from the listing at once; a crash leaves a .tmp-* that the next writer removes
                shutil.rmtree(doomed)
                for report in (d / "reports").glob(f"{v.tag}.*"):
                    report.unlink()
                removed.append(v.tag)
            if removed:
                self._run_hooks(hooks, self.versions(name)[-1], f"removed {len(removed)} versions of {name}")
        return removed

    def derive(
        self,
        parent: Version,
        data: pa.Table | None = None,
        tables: dict[str, pa.Table] | None = None,
        require_latest: bool = False,
        hooks: Sequence[Callable[[Store, Version], None]] = (),
        **changes: Any,
    ) -> Version:
        """Publish the next version of ``parent``'s dataset, made from ``parent``.

        ``data`` replaces the rows (default: the parent's rows); the parent's other tables (pred_probs,
        issues, judge votes, label maps) are carried over, and ``tables`` add or replace some. The manifest
        is ``parent``'s, derived (``Manifest.derive``), with ``changes`` (sections or counts) replacing
        fields. ``require_latest``: refuse (``NotLatestError``, nothing written) if another version was
        published after ``parent``.
        """
        carried = {p.stem: p for p in parent.path.glob("*.parquet") if p.name not in GROUPS}  # the groups come with the rows
        out: dict[str, pa.Table | Path] = {stem: path for stem, path in sorted(carried.items()) if stem not in (tables or {})}  # linked, not rewritten
        out.update(tables or {})
        if isinstance(out.get("issues"), Path) and S.ISSUE_KIND in pq.read_schema(out["issues"]).names:  # published before issue_kind lived in the data only
            out["issues"] = pq.read_table(out["issues"]).drop_columns([S.ISSUE_KIND])
        manifest = parent.manifest().derive(derived_from=parent.tag, **changes)
        return self.publish(
            parent.name,
            parent.read() if data is None else data,
            out,
            manifest,
            parent=parent.number,
            expect_latest=parent.number if require_latest else None,
            hooks=hooks,
        )


def _take_rows(source: pq.ParquetFile, positions: Any, columns: list[str]) -> pa.Table:
    """Rows ``positions`` (in that order) of one Parquet file, reading only the row groups that hold them."""
    import numpy as np

    ends = np.cumsum([source.metadata.row_group(g).num_rows for g in range(source.metadata.num_row_groups)])
    group = np.searchsorted(ends, positions, side="right")
    needed = np.unique(group).tolist()
    if not needed:
        return source.schema_arrow.empty_table().select(columns)
    table = source.read_row_groups(needed, columns=columns)
    first = {g: int(ends[g - 1]) if g else 0 for g in needed}  # where each group starts in the file
    offset = {g: int(o) for g, o in zip(needed, np.cumsum([0] + [source.metadata.row_group(g).num_rows for g in needed])[:-1])}  # and in ``table``
    return table.take(pa.array([offset[g] + int(p) - first[g] for g, p in zip(group, positions)], pa.int64()))


def disk_bytes(*folders: Path) -> int:
    """Bytes that the files under ``folders`` take on disk, each hard-linked file counted once."""
    seen, total = set(), 0
    for p in (p for folder in folders for p in folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total
