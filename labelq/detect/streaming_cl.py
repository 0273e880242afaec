"""Confident learning in a few passes over ``pred_probs`` chunks: cleanlab's results, bit for bit, at a
fraction of its time and memory, with ``pred_probs`` that need not fit in memory.

cleanlab (2.x) calls ``compute_confident_joint`` again for every quantity it returns and copies
``pred_probs`` several times (by class, for ``_reduce_issues``, for ``np.delete``). Here each row is
read at most three times, a chunk at a time:

1. the self-confidences ``p[i, label_i]`` (``N`` values), from which the per-class thresholds are
   the same ``np.mean`` over the same values in the same order as cleanlab's, so equal to the bit;
2. the confident joint's counts, the off-diagonal rows, ``_reduce_issues``' rows (the argmax after
   adding 1e-6 to the given label), argmax, and the label-quality score;
3. (``prune_by_noise_rate`` and ``both`` only) for each given class ``k`` and other class ``j``, the
   ``n_kj`` rows with the largest margin ``p[:, j] - p[:, k]``: a pool per class keeps every row that
   is still among some column's leaders, and the classes are shared out among a thread per core.

Ties: cleanlab takes the first ``n`` of ``np.argsort(-margin)``, whose order among equal values is
numpy's. When equal margins straddle the cut, the margins of that class and column are gathered in
row order (one more pass for those pairs only) and cut with that same ``np.argsort``, so the rows
chosen are cleanlab's. Everything else is integer counting, identical by construction; the K x K
steps (calibration, ``_keep_at_least_n_per_class``, rounding) are cleanlab's arithmetic written out
below, each compared with cleanlab's own in the tests.

The passes can run over row ranges (``parts``) by any ``Mapper``: in this process (``in_process``) or
on Dask workers (``labelq.detect.dask_cl``); the results do not depend on the ranges.

``probs`` is a ``(N, K)`` array or any ``ProbsChunks`` (``labelq.predict.probs``: ``.npy`` files read
by chunks, never memory-mapped as a whole).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np

# cleanlab.internal.constants: the same numbers, so that the same comparisons are made
FLOATING_POINT_COMPARISON = 1e-6
CONFIDENT_THRESHOLDS_LOWER_BOUND = 2e-6
CLIPPING_LOWER_BOUND = 1e-6
TINY_VALUE = 1e-100
FILTER_BY = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given", "low_normalized_margin", "low_self_confidence")
SCORE_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
CHUNK_BYTES = 32 * 2**20  # rows per chunk: about this many bytes of pred_probs


class ProbsChunks(Protocol):
    """``pred_probs`` read a chunk of rows at a time (an array on disk, a Parquet column, a Dask partition)."""

    shape: tuple[int, int]
    dtype: np.dtype

    def chunks(self, rows: int, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, (m, K) array)`` for consecutive chunks of at most ``rows`` rows of ``[start, stop)``."""


def iter_chunks(probs: np.ndarray | ProbsChunks, rows: int | None = None, part: tuple[int, int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Chunks of ``probs`` (of its rows ``part = (start, stop)`` only), each with the index of its first row."""
    n, k = probs.shape
    rows = rows or max(1, CHUNK_BYTES // (max(k, 1) * np.dtype(probs.dtype).itemsize))
    start, stop = part or (0, n)
    if isinstance(probs, np.ndarray):
        for first in range(start, stop, rows):
            yield first, probs[first : min(first + rows, stop)]
    else:
        yield from probs.chunks(rows, start, stop)


Mapper = Callable[..., list]  # mapper(fn, parts, **shared) -> [fn(part, **shared) for part in parts], anywhere


def in_process(fn: Callable, parts: list, **shared) -> list:
    """The ``Mapper`` that runs every part here, one after the other (``labelq.detect.dask_cl`` has Dask's)."""
    return [fn(part, **shared) for part in parts]


def in_threads(fn: Callable, parts: list, **shared) -> list:
    """The ``Mapper`` that runs the parts on a thread each (numpy's loops release the GIL), at most one a core."""
    if len(parts) < 2:
        return in_process(fn, parts, **shared)
    with ThreadPoolExecutor(min(len(parts), os.cpu_count() or 1)) as pool:
        return list(pool.map(lambda part: fn(part, **shared), parts))


def row_ranges(n_rows: int, n_parts: int) -> list[tuple[int, int]]:
    """``n_parts`` consecutive row ranges of about equal size covering ``[0, n_rows)``."""
    edges = np.linspace(0, n_rows, max(1, min(n_parts, n_rows)) + 1).astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def default_parts(n_rows: int) -> list[tuple[int, int]]:
    """One row range a core, for ``in_threads`` (one range below 100k rows, where threads gain nothing)."""
    return row_ranges(n_rows, (os.cpu_count() or 1) if n_rows >= 100_000 else 1)


def whole(probs: np.ndarray | ProbsChunks) -> np.ndarray:
    """The pred_probs as one array (pred_probs read by chunks, a given ``.npy``, are loaded whole)."""
    return probs if isinstance(probs, np.ndarray) else np.concatenate([chunk for _, chunk in iter_chunks(probs)])


def argmax_of(probs: np.ndarray | ProbsChunks) -> np.ndarray:
    """Each row's most probable class, a chunk at a time."""
    return np.concatenate([chunk.argmax(axis=1) for _, chunk in iter_chunks(probs)] or [np.empty(0, np.int64)])


def take_rows(probs: np.ndarray | ProbsChunks, columns: np.ndarray) -> np.ndarray:
    """``probs[i, columns[i]]`` for every row, a chunk at a time."""
    return np.concatenate([_at(chunk, columns[s : s + len(chunk)]) for s, chunk in iter_chunks(probs)] or [np.empty(0)])


@dataclass
class CLCounts:
    """What passes 1 and 2 leave: per-row facts (``N`` values each) and the K x K counts."""

    labels: np.ndarray
    self_confidence: np.ndarray
    thresholds: np.ndarray
    confident_joint: np.ndarray  # raw counts, given label x true-label guess, diagonal at least 1 (cleanlab's calibrate=False)
    off_diagonal: np.ndarray  # confidently counted off the diagonal (cleanlab's return_indices_of_off_diagonals)
    reduced: np.ndarray  # argmax is the given label once it gets 1e-6 more (cleanlab's _reduce_issues)
    argmax: np.ndarray
    score: np.ndarray  # cleanlab's label-quality score by ``score_method`` (its dtype: that of pred_probs)
    score_method: str

    @property
    def n_classes(self) -> int:
        return len(self.thresholds)

    @cached_property
    def label_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.n_classes)

    def calibrated_joint(self) -> np.ndarray:
        """cleanlab's ``compute_confident_joint(calibrate=True)``: rows rescaled to the label counts, rounded keeping row totals."""
        cj, counts = self.confident_joint, self.label_counts
        calibrated = (cj.T / np.clip(cj.sum(axis=1), a_min=TINY_VALUE, a_max=None) * counts).T
        calibrated = calibrated / np.clip(np.sum(calibrated), a_min=TINY_VALUE, a_max=None) * counts.sum()
        return round_preserving_row_totals(calibrated)

    def num_label_issues(self) -> int:
        """cleanlab's ``num_label_issues`` (``off_diagonal``): the confidently off-diagonal rows not reduced."""
        return int(np.count_nonzero(self.off_diagonal & ~self.reduced))


def count(
    labels: np.ndarray,
    probs: np.ndarray | ProbsChunks,
    score_method: str = "self_confidence",
    rows: int | None = None,
    mapper: Mapper = in_process,
    parts: list[tuple[int, int]] | None = None,
) -> CLCounts:
    """Passes 1 and 2 over ``probs``; ``labels`` ``(N,)`` integers in ``[0, K)``, already validated.
    ``parts``: row ranges that ``mapper`` runs each pass over (one range by default); the per-row results
    come back in row order and the counts are summed, so the result does not depend on them."""
    n, k = probs.shape
    labels = np.asarray(labels, dtype=np.int64)
    parts = parts or [(0, n)]
    shared = {"labels": labels, "probs": probs, "rows": rows}
    self_conf = _concat(mapper(_self_confidence_part, parts, **shared), probs.dtype)
    thresholds = _thresholds(labels, self_conf, k)
    cut = _same_comparison(np.asarray(thresholds) - 1e-6, probs.dtype)  # cleanlab: pred_probs >= thresholds - 1e-6
    done = mapper(_count_part, parts, cut=cut, score_method=score_method, **shared)
    joint = sum((d[0] for d in done), np.zeros(k * k, dtype=np.int64)).reshape(k, k)
    np.fill_diagonal(joint, joint.diagonal().clip(min=1))
    off, reduced, argmax = (np.concatenate([d[i] for d in done]) for i in (1, 2, 3))
    return CLCounts(labels, self_conf, thresholds, joint, off, reduced, argmax, _concat([d[4] for d in done], probs.dtype), score_method)


def _concat(arrays: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.empty(0, dtype)


def _self_confidence_part(part: tuple[int, int], labels: np.ndarray, probs, rows: int | None) -> np.ndarray:
    """Pass 1 over rows ``part``: ``p[i, label_i]``."""
    return _concat([_at(chunk, labels[s : s + len(chunk)]) for s, chunk in iter_chunks(probs, rows, part)], probs.dtype)


def _count_part(part: tuple[int, int], labels: np.ndarray, probs, rows: int | None, cut: np.ndarray, score_method: str) -> tuple:
    """Pass 2 over rows ``part``: confident-joint counts, and per row: off the diagonal, reduced, argmax, score."""
    k = probs.shape[1]
    joint = np.zeros(k * k, dtype=np.int64)
    off, reduced, argmax, scores = [], [], [], []
    scratch = None
    for start, chunk in iter_chunks(probs, rows, part):
        m = len(chunk)
        lab = labels[start : start + m]
        self_conf = _at(chunk, lab)
        if scratch is None or len(scratch) < m:
            scratch = np.empty(chunk.shape, dtype=bool)  # one buffer for every chunk: no fresh pages to fault in each time
        confident = _at_least(chunk, cut, scratch[:m])
        n_conf = confident.view(np.uint8).sum(axis=1, dtype=np.int32)
        top = chunk.argmax(axis=1)
        guess = np.where(n_conf > 1, top, confident.argmax(axis=1))
        sure = n_conf > 0
        joint += np.bincount(lab[sure] * k + guess[sure], minlength=k * k)
        off.append(sure & (guess != lab))
        # _reduce_issues: argmax(p + 1e-6 at the label) == label, without the copy: the bumped label wins
        # outright, or ties the row's maximum and comes first
        bumped, highest = self_conf + FLOATING_POINT_COMPARISON, _at(chunk, top)
        reduced.append((bumped > highest) | ((bumped == highest) & (lab <= top)))
        argmax.append(top)
        scores.append(_score(score_method, chunk, lab, self_conf))
    return joint, _concat(off, bool), _concat(reduced, bool), _concat(argmax, np.int64), _concat(scores, probs.dtype)


def _at(chunk: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``chunk[i, columns[i]]`` for every row ``i``: one ``np.take`` over the flat array (4x faster than
    the fancy index, which iterates over two index arrays)."""
    rows = np.arange(len(chunk))
    if not chunk.flags.c_contiguous:
        return chunk[rows, columns]
    return np.take(chunk.reshape(-1), rows * chunk.shape[1] + columns)


def _at_least(chunk: np.ndarray, cut: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``chunk >= cut`` (a cut per column) into ``out``, a block of rows at a time against a tiled ``cut``:
    numpy's broadcast comparison runs an inner loop of ``K`` per row, 2-4x slower over small ``K``."""
    block = max(1, 2**16 // max(chunk.shape[1], 1))
    tiled = np.tile(cut, (min(block, len(chunk)), 1))
    for first in range(0, len(chunk), block):
        last = min(first + block, len(chunk))
        np.greater_equal(chunk[first:last], tiled[: last - first], out=out[first:last])
    return out


def _same_comparison(cut: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``cut`` in ``dtype``, rounded up where needed, so that ``x >= result`` equals ``x >= cut`` for every
    ``x`` of ``dtype`` (comparing a float32 chunk with float64 thresholds would convert the whole chunk)."""
    if np.dtype(dtype).kind != "f" or np.dtype(dtype).itemsize >= cut.dtype.itemsize:
        return cut
    down = cut.astype(dtype)
    return np.where(down.astype(cut.dtype) < cut, np.nextafter(down, np.array(np.inf, dtype)), down)


def _thresholds(labels: np.ndarray, self_conf: np.ndarray, k: int) -> np.ndarray:
    """cleanlab's ``get_confident_thresholds``: the mean self-confidence per class, the same values summed
    in the same order (a stable sort by label keeps row order within a class), 2 for an absent class."""
    order, ends = _class_slices(labels, k)
    grouped = self_conf[order]
    means = [np.mean(grouped[e - c : e]) if c else 2 for c, e in zip(np.diff(ends, prepend=0), ends, strict=True)]
    return np.clip(means, a_min=CONFIDENT_THRESHOLDS_LOWER_BOUND, a_max=None)


def _score(method: str, chunk: np.ndarray, labels: np.ndarray, self_conf: np.ndarray) -> np.ndarray:
    """cleanlab's ``get_label_quality_scores`` for one chunk."""
    if method == "self_confidence":
        return self_conf
    if method == "normalized_margin":
        scratch = chunk.copy()
        scratch[np.arange(len(chunk)), labels] = -np.inf
        return (self_conf - scratch.max(axis=1) + 1) / 2
    if method == "confidence_weighted_entropy":
        from scipy.special import xlogy

        entropy = -np.sum(xlogy(chunk, chunk), axis=1) / np.log(chunk.shape[1])
        scores = entropy / np.clip(self_conf, a_min=CLIPPING_LOWER_BOUND, a_max=None)
        return np.log(scores + 1) / np.clip(scores, a_min=CLIPPING_LOWER_BOUND, a_max=None)
    raise ValueError(f"unknown score method {method!r}")


def find_label_issues(
    counts: CLCounts,
    probs: np.ndarray | ProbsChunks,
    filter_by: str = "prune_by_noise_rate",
    rows: int | None = None,
    mapper: Mapper = in_process,
    parts: list[tuple[int, int]] | None = None,
) -> np.ndarray:
    """cleanlab's ``filter.find_label_issues(labels, pred_probs, filter_by=...)`` with its other defaults
    (``mapper`` and ``parts`` as in ``count``: they run the ``prune_by_noise_rate`` search)."""
    labels = counts.labels
    if filter_by in ("low_normalized_margin", "low_self_confidence"):
        method = filter_by[4:]
        scores = counts.score if method == counts.score_method else _scores(counts, probs, method, rows)
        mask = np.zeros(len(labels), dtype=bool)
        mask[np.argsort(scores)[: counts.num_label_issues()]] = True
        return mask
    if filter_by == "confident_learning":
        mask = counts.off_diagonal.copy()
    elif filter_by == "predicted_neq_given":
        mask = counts.argmax != labels
    else:
        prune = keep_at_least_one_per_class(counts.calibrated_joint().T)
        if filter_by in ("prune_by_class", "both"):
            mask = _prune_by_class(counts, prune)
        if filter_by in ("prune_by_noise_rate", "both"):
            by_rate = _prune_by_noise_rate(counts, probs, prune, rows, mapper, parts or [(0, len(counts.labels))])
            mask = by_rate if filter_by == "prune_by_noise_rate" else mask & by_rate
    mask &= ~counts.reduced
    return mask


def _scores(counts: CLCounts, probs: np.ndarray | ProbsChunks, method: str, rows: int | None) -> np.ndarray:
    out = []
    for start, chunk in iter_chunks(probs, rows):
        lab = counts.labels[start : start + len(chunk)]
        out.append(_score(method, chunk, lab, counts.self_confidence[start : start + len(chunk)]))
    return np.concatenate(out)


def _class_slices(labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices grouped by label, in row order within a class, and each class's end in that order."""
    return _stable_order(labels, k), np.cumsum(np.bincount(labels, minlength=k))


def _stable_order(labels: np.ndarray, k: int) -> np.ndarray:
    """``np.argsort(labels, kind="stable")``, on the narrowest unsigned type that holds ``k`` classes
    (numpy sorts 8- and 16-bit integers by radix: 6x faster at a million rows)."""
    narrow = np.uint8 if k <= 2**8 else np.uint16 if k <= 2**16 else labels.dtype
    return np.argsort(labels.astype(narrow, copy=False), kind="stable")


def _prune_by_class(counts: CLCounts, prune: np.ndarray) -> np.ndarray:
    """cleanlab's ``_prune_by_class``: in class ``k``, the ``n_k - prune[k, k]`` rows of lowest self-confidence."""
    mask = np.zeros(len(counts.labels), dtype=bool)
    order, ends = _class_slices(counts.labels, counts.n_classes)
    for k, (begin, end) in enumerate(zip(np.concatenate([[0], ends[:-1]]), ends, strict=True)):
        rows = order[begin:end]
        n_issues = len(rows) - prune[k, k]
        if len(rows) > 1 and n_issues >= 1:
            mask[rows[np.argsort(counts.self_confidence[rows])[:n_issues]]] = True
    return mask


def _prune_by_noise_rate(counts: CLCounts, probs: np.ndarray | ProbsChunks, prune: np.ndarray, rows: int | None, mapper: Mapper, parts: list) -> np.ndarray:
    """cleanlab's ``_prune_by_count``: for given class ``k`` and each other class ``j``, the ``prune[j, k]``
    rows of class ``k`` with the largest ``p[:, j] - p[:, k]`` (see the module's note on ties).

    Only rows whose argmax is not their label can have a positive margin, so they are searched first; a
    class with a column whose leaders reach down to margins <= 0 is searched again over all its rows."""
    labels, k = counts.labels, counts.n_classes
    sizes = counts.label_counts
    need = prune.T.copy()  # need[k, j]: rows of given class k to take by column j
    np.fill_diagonal(need, 0)
    need[sizes <= 1] = 0  # cleanlab prunes nothing in a class of at most min_examples_per_class (1) rows
    need = np.minimum(need, sizes[:, None])
    columns = [_searched_columns(need[c]) for c in range(k)]
    shared = {"labels": labels, "probs": probs, "need": need, "columns": columns, "rows": rows, "whole": len(parts) == 1}
    leaders = _merge_leaders(mapper(_leaders, parts, search=counts.argmax != labels, **shared), need, columns)
    # the n-th largest margin over the rows searched is positive: no row left out (margin <= 0) can reach it
    short = [c for c, (_, cut, _) in leaders.items() if (cut[need[c, columns[c]] > 0] <= 0).any()]
    if short:
        leaders.update(_merge_leaders(mapper(_leaders, parts, search=np.isin(labels, short), **shared), need, columns))
    mask = np.zeros(len(labels), dtype=bool)
    straddling: list[tuple[int, int]] = []
    for c, (flagged, _, inexact) in leaders.items():
        mask[flagged] = True
        straddling += [(c, int(j)) for j in columns[c][inexact]]  # equal margins straddle the cut: cleanlab's argsort decides
    if straddling:
        for rows_k, margin, n in _gather_margins(counts, probs, straddling, prune, rows):
            mask[rows_k[np.argsort(-margin)[:n]]] = True
    return mask


def _decide(ids: np.ndarray, held: np.ndarray, cut: np.ndarray, need: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One class's pool decided: the rows among its columns' leaders (where exactly ``need`` margins reach
    the cut), the cuts, and the columns whose equal margins straddle the cut."""
    above = held >= cut[:, None]
    exact = above.sum(axis=1) == need
    return ids[above[exact].any(axis=0)], cut, ~exact


def _searched_columns(need: np.ndarray) -> np.ndarray:
    """The columns whose margins a class's search computes (``need``: its row of rows to take): those with rows to take, or all ``K`` when
    that is most of them (``p - p[:, [c]]`` is one subtraction, with no copy of the columns first)."""
    wanted = np.flatnonzero(need)
    return np.arange(len(need)) if 2 * len(wanted) > len(need) else wanted


def _merge_leaders(found: list[dict], need: np.ndarray, columns: list[np.ndarray]) -> dict:
    """The leaders of all parts, decided (``_decide``): a row among a column's leaders overall is among
    them in its own part. One part has decided its own."""
    if len(found) == 1:
        return found[0]
    out = {}
    for c in found[0] if found else {}:
        pool = _Pool(need[c, columns[c]], found[0][c][1].dtype)
        pool.waiting = [(ids, held.T) for ids, held, _ in (part[c] for part in found)]
        out[c] = _decide(*pool.finish(), need[c, columns[c]])
    return out


def _leaders(
    part: tuple[int, int], labels: np.ndarray, probs, need: np.ndarray, columns: list[np.ndarray], search: np.ndarray, rows: int | None, whole: bool
) -> dict:
    """For each class with columns to prune, over the rows of ``part`` in ``search``: the pool (row ids,
    margins by column) of rows among some column's ``need`` largest margins, and each column's cut. Once
    a class's rows outnumber its pool, one partition (``_nth_largest``) renews the cuts and new rows below
    every cut are dropped at once, so each row is partitioned O(1) times. The classes are shared out
    among a thread per core, each class's pool kept by one thread. ``whole``: ``part`` is every row, and
    each class comes back decided (``_decide``), its pool dropped at once."""
    k = len(columns)
    state = {c: _Pool(need[c, js], probs.dtype) for c, js in enumerate(columns) if need[c, js].any()}
    n_threads = min(len(state), os.cpu_count() or 1) or 1
    groups = [list(state)[t::n_threads] for t in range(n_threads)]

    def search_classes(group: list[int], chunk: np.ndarray, order: np.ndarray, ends: np.ndarray, start: int) -> None:
        for c in group:
            local = order[ends[c - 1] if c else 0 : ends[c]]
            if len(local):
                js = columns[c]
                margins = np.take(chunk, local, axis=0) if len(js) == k else chunk[np.ix_(local, js)]
                margins -= chunk[local, c][:, None]
                state[c].add(local + start, margins)

    # a thread per group of classes, each taking its chunks in order, while this thread reads and sorts
    # the next chunk (at most two chunks in flight)
    workers = [ThreadPoolExecutor(1) for _ in groups]
    try:
        in_flight: list[list] = []
        for start, chunk in iter_chunks(probs, rows, part):
            picked = np.flatnonzero(search[start : start + len(chunk)])
            lab = labels[start + picked]
            order, ends = picked[_stable_order(lab, k)], np.cumsum(np.bincount(lab, minlength=k))
            in_flight.append([w.submit(search_classes, g, chunk, order, ends, start) for w, g in zip(workers, groups, strict=True)])
            if len(in_flight) > 1:
                [f.result() for f in in_flight.pop(0)]
        [f.result() for fs in in_flight for f in fs]

        def finish(group: list[int]) -> list[tuple[int, tuple]]:
            out = []
            for c in group:
                pool = state.pop(c)  # dropped once decided
                out.append((c, _decide(*pool.finish(trim=False), pool.need) if whole else pool.finish()))
            return out

        done = [w.submit(finish, g) for w, g in zip(workers, groups, strict=True)]
        return dict(sorted(pair for f in done for pair in f.result()))
    finally:
        for w in workers:
            w.shutdown(cancel_futures=True)


class _Pool:
    """One class's candidate rows: ids, and margins held by column ``(columns, rows)``, so that each
    column's partition runs over contiguous memory (rows wait as they come, ``(rows, columns)``)."""

    def __init__(self, need: np.ndarray, dtype: np.dtype) -> None:
        self.need = need
        self.ids, self.held = np.empty(0, np.int64), np.empty((len(need), 0), dtype)
        self.cut = np.full(len(need), -np.inf)  # until the first merge: every row is a candidate
        self.waiting: list[tuple[np.ndarray, np.ndarray]] = []
        self.n_waiting = 0

    def add(self, ids: np.ndarray, margins: np.ndarray) -> None:
        if len(self.ids):  # the cuts only rise: a row below all of them never returns
            live = (margins >= self.cut).any(axis=1)
            ids, margins = ids[live], margins[live]
        self.waiting.append((ids, margins))
        self.n_waiting += len(ids)
        if self.n_waiting >= max(len(self.ids), 4096):
            self._merge()

    def _merge(self, trim: bool = True) -> None:
        ids = np.concatenate([self.ids, *(i for i, _ in self.waiting)])
        held = np.concatenate([self.held, *(m.T for _, m in self.waiting)], axis=1)
        self.waiting, self.n_waiting = [], 0
        self.cut = _nth_largest(held, self.need)
        if trim:
            keep = (held >= self.cut[:, None]).any(axis=0)
            ids, held = ids[keep], held[:, keep]
        self.ids, self.held = ids, held

    def finish(self, trim: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row ids, margins and cuts; ``trim=False`` leaves in the rows below every cut (for ``_decide``,
        which compares every row with the cuts itself)."""
        self._merge(trim)
        return self.ids, self.held, self.cut


def _nth_largest(values: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per row ``j`` of ``values``, its ``n[j]``-th largest value (-inf where the row is shorter, +inf
    where ``n[j]`` is 0).

    One single-``kth`` partition brings every row's ``max(n)`` largest values to its end; a sort of
    that slab gives each row's own cut (a partition with many ``kth`` costs several times more)."""
    m = values.shape[1]
    out = np.where(n > 0, -np.inf, np.inf)
    ok = (n <= m) & (n > 0)
    if m and ok.any():
        top = int(n[ok].max())
        slab = np.sort(np.partition(values, m - top, axis=1)[:, m - top :], axis=1)
        out[ok] = slab[ok, top - n[ok]]
    return out


def _gather_margins(counts: CLCounts, probs, pairs: list[tuple[int, int]], prune: np.ndarray, rows: int | None):
    """For each ``(k, j)``: class ``k``'s rows, their margins ``p[:, j] - p[:, k]`` in row order, and how many to take."""
    labels = counts.labels
    parts: dict[tuple[int, int], list[np.ndarray]] = {pair: [] for pair in pairs}
    for start, chunk in iter_chunks(probs, rows):
        lab = labels[start : start + len(chunk)]
        for c, j in pairs:
            local = np.flatnonzero(lab == c)
            parts[(c, j)].append(chunk[local, j] - chunk[local, c])
    for c, j in pairs:
        yield np.flatnonzero(labels == c), np.concatenate(parts[(c, j)]), int(prune[j, c])


def noise_matrix(counts: CLCounts) -> np.ndarray:
    """P(given label i | true label j): the calibrated confident joint over its column totals, off-diagonal
    rates clipped below 1 and columns renormalized (cleanlab's ``estimate_latent`` without its optional
    iterative convergence)."""
    cj = counts.calibrated_joint()
    return _clip_noise_rates(cj / np.clip(cj.sum(axis=0).astype(float), a_min=TINY_VALUE, a_max=None))


def _clip_noise_rates(matrix: np.ndarray) -> np.ndarray:
    diagonal = np.diagonal(matrix)
    clipped = np.clip(matrix, 0, 0.9999)
    np.fill_diagonal(clipped, diagonal)
    return clipped / np.clip(clipped.sum(axis=0), a_min=TINY_VALUE, a_max=None)


# cleanlab's K x K count arithmetic, written out: importing cleanlab costs ~3.7 s and ~240 MB
# (scikit-learn, pandas), more than the whole count at a million rows. The tests compare each with cleanlab's own.


def round_preserving_row_totals(matrix: np.ndarray) -> np.ndarray:
    """cleanlab's ``round_preserving_row_totals``: each row rounded to integers keeping its rounded total."""
    return np.array([_round_preserving_sum(row) for row in np.asarray(matrix, dtype=float)], dtype=int).reshape(np.shape(matrix))


def _round_preserving_sum(floats: np.ndarray) -> np.ndarray:
    ints = floats.round()
    orig_sum, int_sum = np.sum(floats).round(), np.sum(ints).round()
    while abs(int_sum - orig_sum) > FLOATING_POINT_COMPARISON:
        diff = np.round(orig_sum - int_sum)
        increment = -1 if int(diff < 0.0) else 1
        changes = min(int(abs(diff)), len(floats))
        for i in np.argsort(floats - ints)[::-increment][:changes]:
            ints[i] = ints[i] + increment
        int_sum = np.sum(ints).round()
    return ints.astype(int)


def keep_at_least_one_per_class(prune_count_matrix: np.ndarray) -> np.ndarray:
    """cleanlab's ``_keep_at_least_n_per_class(m, n=1, frac_noise=1.0)`` (``m`` is the confident joint
    transposed): each diagonal count raised to at least 1, taken evenly from the column's non-zero noise counts."""
    diagonal = np.diagonal(prune_count_matrix)
    new_diagonal = np.maximum(diagonal, 1)
    per_col = np.maximum(np.count_nonzero(prune_count_matrix, axis=0) - 1.0, 1.0)
    new = prune_count_matrix - (new_diagonal - diagonal) / per_col
    new[new < 0] = 0
    np.fill_diagonal(new, new_diagonal)
    reduced = new * 1.0  # cleanlab's _reduce_prune_counts at frac_noise 1: the same matrix, as integers
    np.fill_diagonal(reduced, new.diagonal() + np.sum(new - reduced, axis=0))
    return round_preserving_row_totals(reduced.astype(int)).astype(int)
