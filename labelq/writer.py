"""Writing one new version of a dataset, and what a version's files are.

``VersionWriter`` is the writing side of the store (``labelq.store.Store.publish`` holds the dataset's lock
and decides what to publish; the writer does it): a temporary ``.tmp-*`` folder in the dataset's folder,
the rows split into ``data/`` and the column-group files (``column_groups``), each file written or, when an
earlier version holds the same bytes (or for a group file the same values as the parent's or the latest's),
hard-linked to it (``_write_shared``); the manifest stamped with the version's identity, files and
checksum; then one rename into place, which fails rather than overwrite. ``discard()`` removes the
temporary folder after any failure, so nothing is ever half written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from . import schema as S
from .deferred import DeferredInputs, DeferredPayload
from .errors import VersionConflictError
from .io import BatchSource, TableHasher, atomic_write_text, file_sha256, parquet_batches, write_parquet
from .manifest import Manifest

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CHECKSUM_KEY = Manifest.CHECKSUM  # sha256 of the manifest's other keys: a hand-edited manifest no longer matches
RUN_RECORD = "run.json"  # listed in the manifest's files (versions from before manifest checksums carry it unlisted)
PAYLOAD = "payload.parquet"  # id and the inputs (images, texts, features)
SOFT_LABELS = "soft_labels.parquet"  # id and soft_label (K floats a row), which re-labels with other options leave unchanged
SCORES = "scores.parquet"  # id and the audit's per-row results that re-labels leave unchanged: label_score, suggested_label, issue_rank
NOISE = "noise.parquet"  # given_label, true_label, joint, noise_rate: confident learning's K x K estimates
GROUPS = (PAYLOAD, SOFT_LABELS, SCORES)  # column groups kept apart from data/, each shared while it does not change


def column_groups(data: pa.Table) -> dict[str, list[str]]:
    """The columns of ``data`` that go to each group file (groups without columns left out)."""
    inputs = [c for c in S.info_of(data).inputs or [] if c in data.column_names and c not in (S.ID, S.LABEL, S.SPLIT)]
    groups = {
        PAYLOAD: inputs,
        SOFT_LABELS: [c for c in (S.SOFT_LABEL,) if c in data.column_names],
        SCORES: [c for c in (S.LABEL_SCORE, S.SUGGESTED_LABEL, S.ISSUE_RANK) if c in data.column_names],
    }
    return {f: cols for f, cols in groups.items() if cols}


def manifest_checksum(manifest: dict) -> str:
    """sha256 of a manifest's keys other than its checksum, in canonical JSON."""
    body = {k: v for k, v in manifest.items() if k != CHECKSUM_KEY}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=json_default).encode()).hexdigest()


_HASHES: dict[tuple, str] = {}  # (path, device, inode, size, mtime, ctime) -> sha256, for files already hashed in this process


def cached_sha256(path: Path) -> str:
    """``file_sha256(path)``, remembered in this process while the file's identity, size and times stay the same
    (any write changes its ctime, which no user can set back)."""
    st = os.stat(path)
    key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _HASHES:
        _HASHES[key] = file_sha256(path)
    return _HASHES[key]


def _write_shared(path: Path, table: pa.Table | Path | BatchSource, shared: dict[str, Path], same_content: Sequence[Path] = ()) -> str:
    """Write ``table`` to ``path`` and return its sha256. When an earlier version holds a file with the
    same bytes, ``path`` becomes a hard link to it (the copy is dropped). A ``Path`` is a published file
    carried unchanged (``derive``): linked, never rewritten. ``same_content``: published files to link
    when they hold the same values (a table read back from Parquet can be written to other bytes; a
    ``BatchSource``, streamed, is compared once written, a batch at a time). Where the file system has
    no hard links, the bytes are copied."""
    for candidate in same_content:
        if isinstance(table, pa.Table) and candidate.is_file() and pq.read_table(candidate).equals(table):
            table = candidate
            break
    if isinstance(table, Path):
        source, digest = table, cached_sha256(table)
    else:
        digest = file_sha256(write_parquet(path, table))
        source = shared.get(digest)
        if source is None and same_content and not isinstance(table, pa.Table):
            written = _content_hash(path)
            source = next((c for c in same_content if c.is_file() and _content_hash(c) == written), None)
            digest = cached_sha256(source) if source is not None else digest
    if source is not None:
        link = path.with_name(f".link-{uuid.uuid4().hex}")
        try:
            os.link(source, link)
            os.replace(link, path)
        except OSError as exc:  # a file system without hard links
            log.debug("copied %s (%s)", path.name, exc)
            link.unlink(missing_ok=True)
            if not path.exists():
                shutil.copyfile(source, path)
    return digest


def _content_hash(path: Path) -> str:
    """``labelq.io.TableHasher``'s hash of a Parquet file's values, read a batch at a time."""
    hasher = TableHasher()
    for batch in parquet_batches(pq.ParquetFile(path)):
        hasher.update(batch)
    return hasher.hexdigest()


def json_default(obj):
    import numpy as np

    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to a manifest")


class VersionWriter:
    """Version ``number`` of dataset ``name`` being written in ``folder`` (the dataset's folder, its lock held by the
    caller): ``write`` the files, ``stamp`` the manifest, ``commit`` (the rename); ``discard`` after any failure.
    ``existing``: the versions published so far, whose equal files are linked; ``parent``: the version recorded
    as the parent (its group files are linked when their values are unchanged)."""

    def __init__(self, folder: Path, name: str, number: int, parent: int | None, existing: Sequence) -> None:
        self.folder, self.name, self.number, self.parent, self.existing = folder, name, number, parent, list(existing)
        self.tmp = folder / f".tmp-{uuid.uuid4().hex}"
        (self.tmp / "data").mkdir(parents=True)
        self.files: dict[str, str] = {}
        self.data: pa.Table | None = None
        self.payload: DeferredPayload | None = None
        self.deferred: DeferredInputs | None = None

    def write(self, data: pa.Table, tables: dict[str, pa.Table | Path]) -> dict[str, str]:
        """Write the rows (``data/`` and the group files) and the contract ``tables``; returns ``{file: sha256}``. A
        ``Path`` in ``tables`` is a published file carried unchanged (linked); inputs still in a Parquet source
        (``DeferredInputs``) are streamed into ``payload.parquet``."""
        info = S.info_of(data)
        self.deferred = DeferredInputs.from_json(info.deferred)
        info = dataclasses.replace(info, deferred=None)
        groups = column_groups(data)
        apart = [c for cols in groups.values() for c in cols]
        writes: dict[str, pa.Table | Path | BatchSource] = {"data/part-00000.parquet": S.with_info(data.drop_columns(apart), info)}
        for f, cols in groups.items():  # each file's Hugging Face features describe its own columns
            writes[f] = S.with_info(data.select([S.ID, *cols]), info)
        if self.deferred is not None:
            meta = S.with_info(pa.schema([pa.field(S.ID, pa.string()), *self.deferred.schema()]).empty_table(), info).schema.metadata
            self.payload = writes[PAYLOAD] = self.deferred.payload(data[S.ID], meta)
        writes.update({f"{tname}.parquet": table for tname, table in tables.items()})
        shared = {digest: v.path / rel for v in self.existing for rel, digest in v.manifest_json()["files"].items() if rel.endswith(".parquet")}
        near = [v for v in self.existing if v.number == self.parent or v is self.existing[-1]]  # where an unchanged group comes from
        self.files = {rel: _write_shared(self.tmp / rel, table, shared, [v.path / rel for v in near] if rel in GROUPS else []) for rel, table in writes.items()}
        self.data = data
        return dict(self.files)

    def stamp(self, manifest: Manifest | None, records: Callable[[Manifest], dict[str, dict]] | None = None) -> Manifest:
        """Fill in the version's identity (name, number, parent, time, rows, classes, content hash, files) over the job's
        ``manifest``, write ``records(manifest)`` (JSON files: the audit's run record) and the checksummed manifest."""
        data, deferred, info = self.data, self.deferred, S.info_of(self.data)
        full = dataclasses.replace(
            manifest or Manifest(),
            contract_version=S.CONTRACT_VERSION,
            labelq_version=__version__,
            name=self.name,
            version=self.number,
            parent_version=self.parent,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            rows=data.num_rows,
            class_names=info.class_names,
            label_mapping=info.label_mapping,
            modality=info.modality,
            inputs=info.inputs,
            source=info.source,
            multi_label=info.multi_label or None,
            label_kind=info.label_kind,
            content_hash=TableHasher()
            .update(data.select([c for c in data.column_names if c not in S.DERIVED_COLUMNS]))
            .hexdigest(self.payload.digests() if self.payload else None),
            files=self.files,
            columns=[*data.column_names[:3], *deferred.columns, *data.column_names[3:]] if deferred else data.column_names,
        )
        full = Manifest.from_json(json.loads(json.dumps(full.to_json(), default=json_default)))  # plain JSON values, as a reader will see them
        for fname, obj in (records(full) if records else {}).items():
            obj["published"] = True
            self.files[fname] = file_sha256(atomic_write_text(self.tmp / fname, json.dumps(obj, indent=1, default=json_default)))
        body = {**full.to_json(), "files": self.files}
        body[CHECKSUM_KEY] = manifest_checksum(body)
        atomic_write_text(self.tmp / MANIFEST, json.dumps(body, indent=2, sort_keys=True))
        return full

    def commit(self) -> Path:
        """Rename the version into place; ``VersionConflictError`` (retryable) if that number exists already."""
        final = self.folder / f"v{self.number:04d}"
        try:
            os.rename(self.tmp, final)  # fails if the target exists: never overwrite
        except OSError as exc:
            raise VersionConflictError(f"{self.name} v{self.number:04d} already exists", "publish again; the next free number is used") from exc
        return final

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
