"""Confident learning on a Dask cluster, with the same flags as in one process.

The passes of ``streaming_cl`` run over row ranges of ``pred_probs`` on the workers, each reading its
own rows (a ``.npy`` on storage every worker can read: a shared file system, or object storage
mounted as one); only what the passes reduce comes back: per-row facts (a few bytes a row), the
confident joint's counts (summed), and each range's leaders for ``prune_by_noise_rate`` (merged: a
row among a column's leaders overall is among them in its own range). The thresholds are computed on
the client from the gathered self-confidences, in row order, as in one process; so the flags, scores
and counts are identical to a one-process run, and to cleanlab's.

    from distributed import Client
    from labelq.detect.dask_cl import detect_on_dask
    from labelq.predict.probs import NpyProbs

    with Client("tcp://scheduler:8786") as client:
        detection = detect_on_dask(labels, NpyProbs("/shared/pred_probs.npy"), client)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .confident_learning import ConfidentLearning, Detection
from .streaming_cl import Mapper, ProbsChunks, row_ranges


def dask_mapper(client) -> Mapper:
    """A ``streaming_cl.Mapper`` that runs each row range as a task on ``client``'s workers; arrays
    shared by every task (labels, masks) are scattered to the workers once per pass."""

    def run(fn: Callable, parts: list, **shared) -> list:
        # hash=False: a key of its own each pass (the same array scattered again under its content's key could be
        # forgotten by the scheduler as the previous pass's future is released: "lost dependencies")
        shipped = {k: client.scatter(v, broadcast=True, hash=False) if isinstance(v, np.ndarray) else v for k, v in shared.items()}
        return client.gather(client.map(fn, parts, pure=False, **shipped))

    return run


def detect_on_dask(
    labels: np.ndarray,
    pred_probs: np.ndarray | ProbsChunks,
    client,
    partitions: int | None = None,
    filter_by: str = "prune_by_noise_rate",
    score_method: str = "self_confidence",
) -> Detection:
    """``ConfidentLearning(filter_by, score_method).detect(labels, pred_probs)`` with its passes on ``client``'s
    workers, over ``partitions`` row ranges (default: two per worker)."""
    parts = partitions or 2 * max(1, len(client.scheduler_info()["workers"]))
    return ConfidentLearning(filter_by, score_method).detect(labels, pred_probs, mapper=dask_mapper(client), parts=row_ranges(len(labels), parts))
