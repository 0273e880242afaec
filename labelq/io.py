"""The one place that writes to disk: atomic file writes and content hashes, and where the store lives by default.

A file is written to a temporary name beside its target, flushed, fsynced and renamed into place,
so a reader never sees half a file and a killed process leaves only a ``.tmp-*`` file behind.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.parquet as pq

_log = logging.getLogger(__name__)
CACHE = "cache"  # <store>/cache/: what can be recomputed, each in its own place below (a cache root's layout)
FOLDS = "folds"  # finished folds (``labelq.predict.crossval.FoldCache``)
EMBEDDINGS = "embeddings"  # pretrained vectors, a chunk of rows a file (``labelq.predict.embeddings``)
PRED_PROBS = "pred_probs"  # given Parquet pred_probs aligned to the rows as .npy (``labelq.predict.load_pred_probs``)
JUDGE_VOTES = "judges.duckdb"  # every judge's vote (``labelq.judges.cache.VoteCache``)


def default_root() -> Path:
    """The store's folder when none is given: ``$LABELQ_STORE``, else ``./data/store``."""
    return Path(os.environ.get("LABELQ_STORE", "data/store"))


def current_umask() -> int:
    """This process's umask, read without changing it (``os.umask`` sets it, racing with other threads)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[str], None]) -> Path:
    """``write(tmp)`` writes the file at the temporary path ``tmp``; it then takes ``path``'s place whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
    # mkstemp creates 0600; a published file gets the mode any new file gets (0666 less the umask),
    # so the other readers of a shared store can read it
    os.fchmod(fd, 0o666 & ~current_umask())
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


ROW_GROUP_BYTES = 64 * 2**20


def write_parquet(path: Path, table: pa.Table | BatchSource) -> Path:
    """Write ``table`` (schema metadata included) to Parquet atomically (zstd). A ``BatchSource`` (a
    ``schema`` and ``to_batches()``) is written a batch at a time, never whole in memory.

    Row groups of about ``ROW_GROUP_BYTES`` (at least 1,024 rows, at most 1M): 64k-row groups of a
    list column cost twice the write time. Floating-point columns skip dictionary encoding, which
    almost never pays for them and cost 30% more time on a 400 MB pred_probs column, and are stored
    byte-stream-split (``_float_leaves``)."""
    options = {
        "compression": "zstd",
        "use_dictionary": [f.name for f in table.schema if not _is_float(f.type)],
        "use_byte_stream_split": _float_leaves(table.schema),
    }
    if isinstance(table, pa.Table):
        return atomic_write(path, lambda tmp: pq.write_table(table, tmp, row_group_size=_group_rows(table), **options))

    def stream(tmp) -> None:
        from .progress import progress

        with pq.ParquetWriter(tmp, table.schema, **options) as writer, progress(table.num_rows, f"writing {Path(path).name}", logger=_log) as bar:
            for batch in table.to_batches():
                writer.write_batch(batch, row_group_size=_group_rows(batch))
                bar.update(batch.num_rows)

    return atomic_write(path, stream)


def parquet_batches(source: pq.ParquetFile, columns: list[str] | None = None, batch_size: int = 65_536) -> Iterator[pa.RecordBatch]:
    """``columns`` of a Parquet file, a batch at a time, one row group after another. ``ParquetFile.iter_batches``
    over the whole file holds what it decoded until the end: 509 MB of Arrow memory for a 500 MB file of
    10 row groups, against 83 MB read a row group at a time."""
    for group in range(source.metadata.num_row_groups):
        yield from source.iter_batches(batch_size=batch_size, row_groups=[group], columns=columns)


def parquet_schema(path: Path) -> pa.Schema:
    """The Arrow schema of a Parquet file, or of a folder of them (hive partitions as columns); reads no rows."""
    return pq.ParquetFile(path).schema_arrow if path.is_file() else pq.ParquetDataset(path).schema


def parquet_files(path: Path) -> list[Path]:
    """The files of a Parquet file or folder, in the order a dataset over the folder reads them."""
    return [path] if path.is_file() else [Path(f) for f in pq.ParquetDataset(path).files]


def release_freed_memory() -> None:
    """Give the memory freed so far back to the system: Arrow's pool (``release_unused``) and the C heap
    (``trim_heap``). Both keep freed memory for reuse, and what ingest and the image decoding free
    fragments it: reading Fashion-MNIST left RSS at 215 MB with 37 MB in use (169 MB after this),
    decoding it 297 (229 after), and one CNN fit and prediction 180 MB more, so each fold starts where
    the first did."""
    pa.default_memory_pool().release_unused()
    trim_heap()


@functools.cache
def _libc_trim() -> Callable[[int], int] | None:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    return getattr(libc, "malloc_trim", None)


def trim_heap() -> None:
    """Return the C heap's free pages to the system (glibc's ``malloc_trim``; elsewhere nothing)."""
    trim = _libc_trim()
    if trim is not None:
        trim(0)


class HeapGuard:
    """Keeps the resident memory of a loop that allocates and frees large blocks (a CNN's batches)
    within ``slack`` bytes of its floor, trimming the C heap only when it grows past that. The floor is
    where the loop started, raised to what a trim leaves (memory in use, and code pages the first
    batches brought in), so a loop that needs more memory is not trimmed at every step.

    glibc keeps what is freed for reuse, and its dynamic mmap threshold sends large blocks to the heap
    once the first is freed, where the holes they leave stay resident: a fit and a prediction on
    56,000 Fashion-MNIST images peaked 583-726 MB from run to run. Trimming every 8 batches held them
    at 474-481 MB but cost the full audit 25-50% more time (each trim hands back pages that the next
    batches fault in again); trimming only past the slack costs one read of ``/proc/self/statm`` a
    batch. Where there is no ``/proc`` (not Linux), ``check`` does nothing."""

    def __init__(self, slack: int = 96 * 2**20) -> None:
        self.slack = slack
        self.floor = _resident_bytes()

    def check(self) -> None:
        if self.floor is not None and (_resident_bytes() or 0) > self.floor + self.slack:
            trim_heap()
            self.floor = max(self.floor, _resident_bytes() or 0)


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class BatchSource(Protocol):
    schema: pa.Schema
    num_rows: int

    def to_batches(self) -> Iterator[pa.RecordBatch]: ...


def _group_rows(table: pa.Table | pa.RecordBatch) -> int:
    row_bytes = max(1, table.nbytes // max(table.num_rows, 1))
    return int(min(2**20, max(1024, ROW_GROUP_BYTES // row_bytes)))


def _float_leaves(schema: pa.Schema) -> list[str]:
    """The Parquet paths of ``schema``'s floating-point leaf columns (``soft_label.list.element``...), to
    store with BYTE_STREAM_SPLIT: zstd then packs probabilities 11% smaller (Fashion-MNIST soft labels:
    2.88 -> 2.57 MB) and a data file's scores 8% smaller; every reader of Parquet 2.x (Arrow, DuckDB) reads it."""
    sink = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), sink)
    parquet_schema = pq.ParquetFile(pa.BufferReader(sink.getvalue())).schema
    return [c.path for c in (parquet_schema.column(i) for i in range(len(parquet_schema))) if c.physical_type in ("FLOAT", "DOUBLE")]


def _is_float(t: pa.DataType) -> bool:
    while pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        t = t.value_type
    return pa.types.is_floating(t)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


HASH_ROWS = 65_536  # rows a fixed-width column is hashed by: the same values give the same hash however they are chunked
HASH_ROWS_WIDE = 1_024  # rows of a column of strings, bytes or nested values (1 KB texts: 1 MB; 100 KB images: 100 MB)


class TableHasher:
    """SHA-256 of columns' names, types and values, fed a table or record batches at a time
    (``update``), independent of chunking, metadata and column order. Each column is hashed apart
    (``digests``), so columns read from different places (a table's, a streamed file's) combine into
    the same ``hexdigest`` as one table holding them all."""

    def __init__(self) -> None:
        self._columns: dict[str, tuple[pa.DataType, hashlib._Hash, list[pa.Array]]] = {}

    def update(self, data: pa.Table | pa.RecordBatch) -> TableHasher:
        for name, col in zip(data.column_names, data.columns):
            if name not in self._columns:
                self._columns[name] = (col.type, hashlib.sha256(), [])
            pending = self._columns[name][2]
            pending.extend(col.chunks if isinstance(col, pa.ChunkedArray) else [col])
            self._flush(name, final=False)
        return self

    def _flush(self, name: str, final: bool) -> None:
        kind, h, pending = self._columns[name]
        step = HASH_ROWS if pa.types.is_primitive(kind) else HASH_ROWS_WIDE
        rows = sum(len(a) for a in pending)
        if rows < step and not (final and rows):
            return
        merged = pa.concat_arrays(pending) if len(pending) > 1 else pending[0]
        cut = rows if final else rows - rows % step
        for start in range(0, cut, step):
            piece = pa.concat_arrays([merged.slice(start, min(step, cut - start))])  # fresh buffers at offset 0
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, pa.schema([pa.field(name, kind)])) as writer:
                writer.write_batch(pa.record_batch([piece], names=[name]))
            h.update(sink.getvalue())
        pending[:] = [merged.slice(cut)] if cut < rows else []

    def digests(self) -> dict[str, str]:
        """Each column's hash (``name: type`` first, then its values), by name."""
        out = {}
        for name, (kind, h, _) in self._columns.items():
            self._flush(name, final=True)
            out[name] = hashlib.sha256(f"{name}:{kind}\n".encode() + h.digest()).hexdigest()
        return out

    def hexdigest(self, extra: dict[str, str] | None = None) -> str:
        """The hash of every column, with ``extra`` (other ``digests``) merged in, in name order."""
        merged = {**self.digests(), **(extra or {})}
        return hashlib.sha256("".join(f"{k}={merged[k]}\n" for k in sorted(merged)).encode()).hexdigest()


def table_hash(table: pa.Table) -> str:
    """SHA-256 of a table's column names, types and values (independent of chunking, metadata and column order)."""
    return TableHasher().update(table).hexdigest()
