"""``pred_probs`` on disk, read a chunk of rows at a time (``labelq.detect.streaming_cl.ProbsChunks``).

A ``.npy`` file is mapped one chunk of rows at a time, never as a whole: the pages of a mapping that
has been read count in the process's resident memory until it is unmapped, so a 3.8 GB array mapped
whole would show as 3.8 GB, while a chunk's mapping goes when the chunk is dropped. Mapping instead
of reading saves copying every byte from the page cache (at 1M x 100, 0.6 s of system time over the
three passes of confident learning).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..errors import InputError
from ..validation import check_pred_probs_shape, scan_pred_probs


class NpyProbs:
    """An ``(N, K)`` C-ordered ``.npy`` array of float32 or float64 (an ``(N,)`` one reads as ``(N, 1)``), read by chunks of rows."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as fh:
            try:
                version = np.lib.format.read_magic(fh)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read_header(fh)
            except ValueError as err:
                raise InputError(f"{self.path} is not a .npy file ({err})", "save the array with numpy.save") from err
            self.offset = fh.tell()
        if len(shape) == 1:  # one value a row (a regression target's predictions): the same bytes as (rows, 1)
            shape = (shape[0], 1)
        if len(shape) != 2 or fortran or dtype not in (np.float32, np.float64):
            raise InputError(
                f"{self.path} holds a {'Fortran-ordered ' if fortran else ''}{dtype} array of shape {shape}",
                "save a C-ordered float32 or float64 array of shape (rows, classes): numpy.save(path, np.ascontiguousarray(p, dtype=np.float32))",
            )
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)

    def chunks(self, rows: int, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        n, k = self.shape
        stop = n if stop is None else min(stop, n)
        row_bytes = k * self.dtype.itemsize
        if self.path.stat().st_size < self.offset + n * row_bytes:
            raise InputError(f"{self.path} ends before its {n:,} rows", "the file is truncated: write it again")
        for first in range(start, stop, rows):
            m = min(rows, stop - first)
            # a plain array over a private (copy-on-write) mapping of just these rows, unmapped once dropped
            yield first, np.asarray(np.memmap(self.path, self.dtype, "c", self.offset + first * row_bytes, (m, k)))


@dataclass
class GivenProbs:
    """The user's ``.npy`` pred_probs for an audit, checked once and then read by chunks whenever needed:
    they never have to fit in memory. ``renormalize``: rows within tolerance of summing to 1, divided by
    their sums each time they are read (as ``check_pred_probs`` does in memory)."""

    path: Path
    ids: pa.ChunkedArray
    model: str
    renormalize: np.ndarray

    @classmethod
    def open(
        cls, path: str | Path, ids: pa.ChunkedArray, n_classes: int, model: str | None = None, sum_to_one: bool = True, bounded: bool = True
    ) -> GivenProbs:
        """``model``: what the published table names as the predictions' model (default ``user:<file name>``);
        Without ``sum_to_one``: a probability per class (a tag), each in [0, 1], not rows that sum to 1; not ``bounded``:
        predicted values, any finite numbers."""
        source = NpyProbs(path)
        check_pred_probs_shape(source.shape, len(ids), n_classes)
        near = scan_pred_probs(source.chunks(_rows(source)), sum_to_one, bounded)
        return cls(Path(path), ids, model or f"user:{Path(path).name}", near)

    @property
    def shape(self) -> tuple[int, int]:
        return NpyProbs(self.path).shape

    @property
    def num_rows(self) -> int:
        return len(self.ids)

    @property
    def dtype(self) -> np.dtype:
        return NpyProbs(self.path).dtype

    def chunks(self, rows: int, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        for first, chunk in NpyProbs(self.path).chunks(rows, start, stop):
            fix = self.renormalize[(self.renormalize >= first) & (self.renormalize < first + len(chunk))] - first
            if len(fix):
                chunk[fix] /= chunk[fix].sum(axis=1, keepdims=True)
            yield first, chunk

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """``(len(positions), K)``: the probabilities of a few rows, read as ``chunks`` reads them."""
        return np.stack([next(self.chunks(1, int(r), int(r) + 1))[1][0] for r in positions]) if len(positions) else np.zeros((0, self.shape[1]), self.dtype)

    @property
    def schema(self) -> pa.Schema:
        return S.pred_probs_schema(self.shape[1])

    def to_batches(self) -> Iterator[pa.RecordBatch]:
        """The contract's pred_probs table, a batch at a time (``labelq.io.write_parquet`` streams it)."""
        k = self.shape[1]
        ids = self.ids.cast(pa.string())
        for start, chunk in self.chunks(_rows(self, BATCH_BYTES)):
            m = len(chunk)
            flat = pa.array(np.ascontiguousarray(chunk, dtype=np.float32).reshape(-1))
            yield pa.record_batch(
                [
                    ids.slice(start, m).combine_chunks(),
                    pa.array(np.full(m, -1, np.int32)),
                    pa.FixedSizeListArray.from_arrays(flat, k),
                    pa.repeat(pa.scalar(self.model, pa.string()), m),
                ],
                schema=self.schema,
            )


BATCH_BYTES = 16 * 2**20  # a published batch (and row group): the Parquet writer holds about twice it while encoding


def _rows(source, nbytes: int = 64 * 2**20) -> int:
    """Rows per chunk of ``source``: about ``nbytes`` of pred_probs."""
    return rows_per_chunk(source.shape[1], source.dtype, nbytes)


def rows_per_chunk(n_classes: int, dtype, nbytes: int = 64 * 2**20) -> int:
    """Rows of ``n_classes`` values of ``dtype`` in about ``nbytes`` (at least one)."""
    return max(1, nbytes // (max(n_classes, 1) * np.dtype(dtype).itemsize))
