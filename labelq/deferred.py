"""Input columns left in their Parquet source until a version is published.

An audit with the user's pred_probs trains no model, so nothing reads the inputs (images, texts,
features) but the publish step, which copies them into the version's ``payload.parquet``. For a
Parquet source, ingest reads every other column and describes the inputs with a ``DeferredInputs``
(in the examples table's metadata, ``ExamplesInfo.deferred``); publish streams them from the source
a row group at a time (``payload``), so they are never whole in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import InputError
from .io import TableHasher, parquet_batches, parquet_files, parquet_schema

BATCH_ROWS = 16_384


@dataclass(frozen=True)
class DeferredInputs:
    """``columns`` of the Parquet file or folder at ``path``: the rows whose ``split`` column equals ``split``
    (all rows when None), in file order. ``id_column``: the source's id column, checked against the
    examples' ids as the rows are read. ``size`` and ``mtime_ns``: the source's files as ingest saw them;
    publishing refuses a source that changed since."""

    path: str
    columns: list[str]
    split: str | None = None
    id_column: str | None = None
    size: int = 0
    mtime_ns: int = 0

    @classmethod
    def of(cls, path: Path, columns: list[str], split: str | None, id_column: str | None) -> DeferredInputs:
        size, mtime = _fingerprint(path)
        return cls(str(path.resolve()), list(columns), split, id_column, size, mtime)

    @classmethod
    def from_json(cls, obj: dict[str, Any] | None) -> DeferredInputs | None:
        return cls(**obj) if obj else None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def schema(self) -> pa.Schema:
        """The deferred columns' fields, as the source declares them."""
        full = parquet_schema(Path(self.path))
        return pa.schema([full.field(c) for c in self.columns])

    def batches(self, extra: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        """The deferred columns (and ``extra`` source columns), a batch at a time, in row order."""
        path = Path(self.path)
        if _fingerprint(path) != (self.size, self.mtime_ns):
            raise InputError(f"the source {path} changed while the audit ran", "audit it again")
        wanted = list(dict.fromkeys([*self.columns, *(extra or [])]))
        read = wanted + (["split"] if self.split is not None and "split" not in wanted else [])
        for batch in _source_batches(path, read):
            if self.split is not None:
                batch = batch.filter(pc.equal(batch.column("split").cast(pa.string()), self.split))
            if batch.num_rows:
                yield batch.select(wanted)

    def payload(self, ids: pa.ChunkedArray | pa.Array, metadata: dict[bytes, bytes]) -> DeferredPayload:
        """``id`` (the examples' ids, in row order) and the deferred columns, to stream into a version."""
        return DeferredPayload(self, ids, metadata)


class DeferredPayload:
    """``id`` and the deferred columns as a ``labelq.io.BatchSource`` (what ``write_parquet`` streams).
    As the batches go by it checks them against ``ids`` (row count, and the source's id column when it
    has one) and hashes the deferred columns (``digests``: the version's content hash covers them)."""

    def __init__(self, deferred: DeferredInputs, ids: pa.ChunkedArray | pa.Array, metadata: dict[bytes, bytes]) -> None:
        self.deferred = deferred
        self.ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        self.schema = pa.schema([pa.field("id", pa.string()), *deferred.schema()], metadata=metadata)
        self.hasher = TableHasher()

    @property
    def num_rows(self) -> int:
        return len(self.ids)

    def to_batches(self) -> Iterator[pa.RecordBatch]:
        self.hasher = TableHasher()
        source_id, done = self.deferred.id_column, 0
        for batch in self.deferred.batches([source_id] if source_id else None):
            n = batch.num_rows
            if done + n > len(self.ids):
                break
            ids = self.ids.slice(done, n)
            if source_id and not batch.column(source_id).cast(pa.string()).equals(ids):
                raise InputError(f"the rows of {self.deferred.path} are not in the order the audit read them", "audit it again")
            inputs = batch.select(self.deferred.columns)
            self.hasher.update(inputs)
            done += n
            yield pa.record_batch([ids, *inputs.columns], schema=self.schema)
        if done != len(self.ids):
            raise InputError(f"the source {self.deferred.path} no longer has the {len(self.ids):,} rows the audit read", "audit it again")

    def digests(self) -> dict[str, str]:
        return self.hasher.digests()


def _fingerprint(path: Path) -> tuple[int, int]:
    """Total size and latest modification time of the source's files."""
    stats = [f.stat() for f in parquet_files(path)]
    return sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)


def _source_batches(path: Path, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """``columns`` of a Parquet file (``ParquetFile``: no ``pyarrow.dataset`` import) or folder, in row order:
    the order ``labelq.ingest.files.read_parquet`` reads them in."""
    if path.is_file():
        yield from parquet_batches(pq.ParquetFile(path), columns, BATCH_ROWS)
        return
    import pyarrow.dataset as ds  # a folder: read as pq.ParquetDataset reads it (hive partitions), batches in order

    yield from ds.dataset(path, format="parquet", partitioning="hive").to_batches(columns=columns, batch_size=BATCH_ROWS)
