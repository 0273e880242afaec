"""The versioned dataset store.

``<root>/datasets/<name>/v<NNNN>/`` holds a published version: ``data/part-00000.parquet`` (the
audited rows, class names in the schema metadata), ``pred_probs.parquet``, ``issues.parquet`` and
``manifest.json``. A version is built in a ``.tmp-*`` folder and renamed into place while holding
the dataset's lock, so readers never see half a version, two writers never get the same number,
and a version is never modified or overwritten afterwards. ``<root>/cache/`` holds finished folds.

The root is ``--store``, else ``$LABELQ_STORE``, else ``./data/store``.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from . import schema as S
from .errors import InputError, StoreError, VersionConflictError
from .io import atomic_write_text, file_sha256, table_hash, write_parquet

# keys every manifest carries (null where they do not apply), so the catalog's `versions` view always binds
MANIFEST_KEYS = ("n_label_issues", "num_label_issues_estimate", "n_corrected", "model", "n_folds", "seed", "filter_by", "auto_fix")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
VERSION_RE = re.compile(r"^v(\d{4,})$")


def default_root() -> Path:
    return Path(os.environ.get("LABELQ_STORE", "data/store"))


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

    def manifest(self) -> dict:
        try:
            return json.loads((self.path / "manifest.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"the manifest of {self.name} {self.tag} is unreadable: {exc}", "the version folder was modified by hand; restore it or remove it") from exc

    def read(self, columns: list[str] | None = None) -> pa.Table:
        return pq.ParquetDataset(str(self.path / "data")).read(columns=columns)

    def read_table(self, name: str) -> pa.Table:
        return pq.read_table(self.path / f"{name}.parquet")


class Store:
    """A folder of versioned datasets. ``Store(root).publish(name, tables, manifest)`` adds a version."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

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

    def version(self, name: str, version: int | str | None = None) -> Version:
        """A published version (the latest when ``version`` is None; ``3``, ``'3'`` or ``'v0003'`` otherwise)."""
        versions = self.versions(name)
        if not versions:
            known = self.datasets()
            raise StoreError(f"no published versions of {name!r} in {self.root}", f"run `labelq audit SOURCE --name {name}` first" + (f"; published datasets: {known}" if known else ""))
        if version is None:
            return versions[-1]
        try:
            number = int(str(version).lstrip("v"))
        except ValueError as exc:
            raise InputError(f"invalid version {version!r}", "use a number such as 3 or v0003") from exc
        for v in versions:
            if v.number == number:
                return v
        raise StoreError(f"{name!r} has no version {version!r}", f"published versions: {[v.tag for v in versions]}")

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

    def publish(self, name: str, data: pa.Table, tables: dict[str, pa.Table], manifest: dict, parent: int | None = None,
                expect_latest: int | None = None, records: Callable[[dict], dict[str, dict]] | None = None) -> Version:
        """Write a new version atomically and return it.

        ``data`` is the audited rows; ``tables`` are extra contract tables (``pred_probs``, ``issues``)
        written beside it; ``manifest`` is merged into the manifest labelq writes. The version number
        is the next free one; ``parent`` (default: the latest version) is recorded. With ``expect_latest``,
        publishing fails (``VersionConflictError``, nothing written) unless that is still the latest version
        once the lock is held: for changes that are only valid on top of the version they were made from.
        ``records(manifest)`` (called with the lock held) returns JSON files to write into the version
        (the audit's run record): they appear together with the version or not at all.
        """
        d = self.dataset_dir(name)
        with self.lock(name):
            for stale in d.glob(".tmp-*"):  # left by a killed writer: nobody else can be writing while we hold the lock
                shutil.rmtree(stale, ignore_errors=True)
            existing = self.versions(name)
            if expect_latest is not None and (not existing or existing[-1].number != expect_latest):
                latest = existing[-1].tag if existing else "none"
                raise VersionConflictError(f"{name} v{expect_latest:04d} is no longer the latest version (now {latest})",
                                           "redo the change on the latest version; nothing was written")
            number = existing[-1].number + 1 if existing else 1
            if parent is None and existing:
                parent = existing[-1].number
            tmp = d / f".tmp-{uuid.uuid4().hex}"
            try:
                (tmp / "data").mkdir(parents=True)
                part = write_parquet(tmp / "data" / "part-00000.parquet", data)
                files = {"data/part-00000.parquet": file_sha256(part)}
                for tname, table in tables.items():
                    files[f"{tname}.parquet"] = file_sha256(write_parquet(tmp / f"{tname}.parquet", table))
                info = S.info_of(data)
                full = {
                    **dict.fromkeys(MANIFEST_KEYS),
                    "contract_version": S.CONTRACT_VERSION,
                    "labelq_version": __version__,
                    "name": name,
                    "version": number,
                    "parent_version": parent,
                    "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "rows": data.num_rows,
                    "class_names": info.class_names,
                    "label_mapping": info.label_mapping,
                    "modality": info.modality,
                    "inputs": info.inputs,
                    "source": info.source,
                    "content_hash": table_hash(data.select([c for c in data.column_names if c not in S.DERIVED_COLUMNS])),
                    "files": files,
                    **manifest,
                }
                atomic_write_text(tmp / "manifest.json", json.dumps(full, indent=2, sort_keys=True, default=_json_default))
                for fname, obj in (records(full) if records else {}).items():
                    atomic_write_text(tmp / fname, json.dumps(obj, indent=1, default=_json_default))
                final = d / f"v{number:04d}"
                try:
                    os.rename(tmp, final)  # fails if the target exists: never overwrite
                except OSError as exc:
                    raise VersionConflictError(f"{name} v{number:04d} already exists", "publish again; the next free number is used") from exc
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            version = Version(name, number, final)
            from .sql import refresh_catalog

            refresh_catalog(self, name)
            return version


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to a manifest")
