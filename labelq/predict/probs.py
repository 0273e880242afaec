"""``pred_probs`` on disk, read a chunk of rows at a time (``labelq.detect.streaming_cl.ProbsChunks``).

A ``.npy`` file is read with plain reads into one chunk-sized array at a time, never memory-mapped as a
whole: the pages of a mapping that has been read count in the process's resident memory until the
kernel needs them back, so a mapped 3.8 GB array would show as 3.8 GB.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError


class NpyProbs:
    """An ``(N, K)`` C-ordered ``.npy`` array of float32 or float64, read by chunks of rows."""

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
        if len(shape) != 2 or fortran or dtype not in (np.float32, np.float64):
            raise InputError(
                f"{self.path} holds a {'Fortran-ordered ' if fortran else ''}{dtype} array of shape {shape}",
                "save a C-ordered float32 or float64 array of shape (rows, classes): numpy.save(path, np.ascontiguousarray(p, dtype=np.float32))",
            )
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)

    def chunks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        n, k = self.shape
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            for start in range(0, n, rows):
                chunk = np.empty((min(rows, n - start), k), dtype=self.dtype)
                if fh.readinto(memoryview(chunk).cast("B")) != chunk.nbytes:
                    raise InputError(f"{self.path} ends before its {n:,} rows", "the file is truncated: write it again")
                yield start, chunk
