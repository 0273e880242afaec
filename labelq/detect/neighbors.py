"""Near-duplicates (exact and near, across splits, with conflicting labels), from each row's nearest
neighbours in a feature space.

**Feature space** (``embed``): one vector a row, at most ``DIMS`` dimensions, unit length (cosine
geometry; Euclidean distance between unit vectors, in [0, 2]):

- images: the decoded pixels (averaged down to at most ``THUMB`` x ``THUMB``), centred on the dataset's
  mean image, projected on their first ``DIMS`` principal components (fitted on ``PCA_SAMPLE`` rows);
- texts: TF-IDF of word 1-2 grams (sublinear tf, the ``TEXT_FEATURES`` most frequent), reduced by
  truncated SVD;
- tabular: the features, centred on their medians and scaled per column (``tabular_spread``: the interquartile range or
  standard deviation, near-constant columns at least the typical spread) (not unit length: a tabular row's distance from
  the bulk is what makes it an outlier; projected like images when there are more than ``DIMS``).

**Exact duplicates** have the same content hash (``content_keys``): the decoded pixels, the text
with case and runs of whitespace folded, or the feature values. Only one row of each exact group
goes to the neighbour search, so a group larger than k is still found whole.

**Near duplicates**: two rows whose distance is at most ``near_duplicate_radius`` times the median
nearest-neighbour distance of the dataset (default 0.2; cleanlab's Datalab uses the same relative
rule with 0.13 on cosine distance). Pairs are joined into sets (connected components): a set whose
rows carry more than one split **leaks** across splits, one whose rows carry more than one label
**conflicts**.

**Outliers** (``outlier_scores``): a row's outlier score is its distance to its K-th nearest
neighbour over the dataset's median of it; a row is an outlier above Tukey's fence, the third quartile
of the scores plus ``outlier_iqr`` (default 1.5, Tukey's) interquartile ranges.

**The space** (``--neighbor-space``): the inputs' own (above), or pretrained embeddings
(``labelq.predict.embeddings``), which ``auto`` takes when the audit's model computes them anyway.
For image outliers the embeddings are far better (``bench/outliers.py``: 10 photo crops among
Fashion-MNIST's 10,000 test images, average precision 0.97 against 0.006 in pixel space). Neither
space finds spam emails among food reviews reliably (0.03-0.10), nor handwritten digits among
Fashion-MNIST (0.08): those look like their hosts to both.

The k nearest neighbours come from FAISS (``knn``): of the libraries ``bench/neighbors.py`` measures
(scikit-learn, FAISS, hnswlib, pynndescent), hnswlib was fastest but builds from source; FAISS installs
as a wheel, its exact search took 10-13 s and 139 MiB for Fashion-MNIST's 70,000 rows (scikit-learn's
brute force 18 s, 241 MiB) and its HNSW 46 s for 200,000 rows (scikit-learn 143 s) at recall@10 1.0.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..errors import InputError
from ..labelkind import kind_of
from ..manifest import NeighborSummary
from ..options import option
from ..predict.models import read_inputs
from ..progress import progress
from ..validation import check_fraction

log = logging.getLogger(__name__)

DIMS = 128
PCA_SAMPLE = 10_000
EXACT_MAX = 100_000  # rows searched exactly; HNSW above
QUERY_BLOCK = 16_384
BLOCK = 4096  # rows projected at a time
DECODE_BUDGET = 256 * 2**20  # an image column larger than this decoded is read a block at a time
DECODED_BLOCK_BYTES = 32 * 2**20  # such a block: images decoded (or made float32 for their thumbnails) at a time
THUMB = 32  # images are compared as thumbnails of at most THUMB x THUMB pixels
TEXT_FEATURES = 2**16
K = 10  # neighbours searched a row: a set larger than K + 1 is still found whole, through chains of pairs; the outlier score is the K-th's distance
MAX_SET_IDS = 100  # near_duplicate_set holds at most this many ids (the set's first, in id order)
OUTLIER_IQR = 1.5  # is_outlier: score above Q3 + OUTLIER_IQR x IQR (Tukey's fence; bench/outliers.py)
SPACES = ("auto", "embeddings", "inputs")


@dataclass
class NeighborOptions:
    """The near-duplicate checks (``labelq.detect.neighbors``)."""

    data_checks: bool = option(
        "--data-checks/--no-data-checks",
        default=True,
        show_default=True,
        help="Look for exact and near duplicates of rows (across splits, with conflicting labels) in a feature space of the inputs.",
    )
    near_duplicate_radius: float = option(
        "--near-duplicate-radius",
        default=0.2,
        show_default=True,
        type=float,
        help="Two rows are near duplicates within this fraction of the median nearest-neighbour distance.",
    )
    outlier_iqr: float = option(
        "--outlier-iqr",
        default=OUTLIER_IQR,
        show_default=True,
        type=float,
        help="A row is an outlier when its distance to its 10th nearest neighbour, over the median of it, exceeds the third quartile by this many interquartile ranges.",
    )
    neighbor_space: str = option(
        "--neighbor-space",
        default="auto",
        show_default=True,
        choices=SPACES,
        help="Space of the duplicate and outlier checks: 'embeddings' (pretrained: MiniLM for text, EfficientNet-Lite0 for images), "
        "'inputs' (pixels, TF-IDF, features), or 'auto' (embeddings when the model already computes them, else inputs).",
    )

    def __post_init__(self) -> None:
        check_fraction(self.near_duplicate_radius, "--near-duplicate-radius")
        if not (isinstance(self.outlier_iqr, int | float) and 0 <= self.outlier_iqr < float("inf")):
            raise InputError(f"--outlier-iqr must be a number >= 0, got {self.outlier_iqr!r}", "e.g. --outlier-iqr 3")
        if self.neighbor_space not in SPACES:
            raise InputError(f"unknown --neighbor-space {self.neighbor_space!r}", f"use one of {list(SPACES)}")


@dataclass
class NeighborChecks:
    """Per-row results (arrays of shape ``(N,)``) and a summary."""

    set_id: np.ndarray  # int64, -1 where the row is in no set
    exact: np.ndarray  # bool: the row has an exact duplicate
    leak: np.ndarray  # bool: the row's set spans more than one split
    conflict: np.ndarray  # bool: the row's set carries more than one label
    outlier_score: np.ndarray  # float64: the row's distance to its K-th nearest neighbour over the dataset's median of it
    is_outlier: np.ndarray  # bool: outlier_score above the rule's threshold
    info: NeighborSummary = field(default_factory=NeighborSummary)

    @property
    def is_near_duplicate(self) -> np.ndarray:
        return self.set_id >= 0

    def set_ids_column(self, ids: pa.ChunkedArray | pa.Array) -> pa.Array:
        """``near_duplicate_set``: the ids of each row's set (at most ``MAX_SET_IDS``, in id order), null outside sets."""
        ids = np.asarray(ids.to_pylist(), dtype=object)
        members: dict[int, list] = {}
        for row in np.flatnonzero(self.set_id >= 0):
            members.setdefault(int(self.set_id[row]), []).append(ids[row])
        sets = {s: sorted(m)[:MAX_SET_IDS] for s, m in members.items()}
        return pa.array([sets[int(s)] if s >= 0 else None for s in self.set_id], pa.list_(pa.string()))


def image_blocks(examples: pa.Table, budget: int | None = None) -> Callable[[], Iterator[tuple[int, np.ndarray]]] | None:
    """A reader of the image column a block of about ``DECODED_BLOCK_BYTES`` decoded at a time (``decode_blocks``),
    when decoding it whole would take more than ``budget`` (``DECODE_BUDGET``) bytes, judged by its first image; else None."""
    from ..ingest.images import decode_blocks, decode_images, image_layout

    column = examples[S.info_of(examples).inputs[0]]
    if len(column) == 0:
        return None
    first = decode_images(column.slice(0, 1))
    if first.nbytes * len(column) <= (DECODE_BUDGET if budget is None else budget):
        return None
    ids = examples[S.ID].to_pylist()
    rows = max(1, DECODED_BLOCK_BYTES // first.nbytes)
    layout = image_layout(column, rows, ids)
    return lambda: decode_blocks(column, rows, ids, layout)


def has_inputs(examples: pa.Table) -> bool:
    """Whether the rows' inputs were read (not a table of labels only, nor inputs left in their Parquet source)."""
    info = S.info_of(examples)
    return info.modality in ("image", "text", "tabular") and bool(info.inputs) and all(c in examples.column_names for c in info.inputs)


def content_keys(modality: str, inputs: np.ndarray) -> np.ndarray:
    """A digest of each row's content (``(N,)`` 16-byte strings): decoded pixels, folded text, or feature values."""
    if modality == "text":
        space = re.compile(r"\s+")
        rows = (space.sub(" ", t).strip().casefold().encode() for t in inputs)
    else:
        rows = (inputs[i].tobytes() for i in range(len(inputs)))
    return np.array([hashlib.blake2b(r, digest_size=16).digest() for r in rows], dtype="S16")


def embed(modality: str, inputs: np.ndarray, seed: int = 0) -> np.ndarray:
    """The rows' unit vectors in the feature space described above (``inputs`` from ``read_inputs``): ``(N, <= DIMS)`` float32."""
    if modality == "image":
        small = _thumbnails(inputs).reshape(len(inputs), -1)
        X = _project(lambda: (small[s : s + BLOCK] for s in range(0, len(small), BLOCK)), len(small), seed)
    elif modality == "text":
        X = _text_vectors(inputs.tolist(), seed)
    else:  # scaled per column (tabular_spread), and no unit length: a row's distance from the bulk is what makes it an outlier
        X = (inputs - np.median(inputs, axis=0)) / tabular_spread(inputs)
        return np.asarray(_project(lambda: (X[s : s + BLOCK] for s in range(0, len(X), BLOCK)), len(X), seed) if X.shape[1] > DIMS else X, dtype=np.float32)
    return _unit(X)


def tabular_spread(inputs: np.ndarray) -> np.ndarray:
    """Each column's scale ``(D,)`` for the tabular space: columns in any units become comparable, and no column's noise dominates.

    A column whose middle half varies is scaled by the larger of its interquartile range (over 1.349, a normal
    column's standard deviation) and its standard deviation winsorized at the 1st and 99th percentiles, which a
    sparse column's rare values raise and a few rows far out do not. A
    near-constant column (its middle half one value: a pixel at the edge of every digit) is scaled by at least
    the typical spread of the varied columns: divided by its own tiny spread, a little noise in it would
    outweigh every other column (40 noisy copies planted among scikit-learn's digits: none of the 80 rows found by
    the interquartile range alone, 80 of 80 so, as by cleanlab's Datalab; ``bench/tabular_checks.py``)."""
    low, q1, q3, high = np.percentile(inputs, [1, 25, 75, 99], axis=0)
    std = np.clip(inputs, low, high).std(axis=0)  # winsorized: the few rows far out (outliers) do not widen their columns
    std = np.where(std > 0, std, inputs.std(axis=0))  # a column whose rare values lie beyond the 99th percentile
    varied = q3 > q1
    typical = float(np.median((q3 - q1)[varied] / 1.349)) if varied.any() else 1.0
    spread = np.where(varied, np.maximum((q3 - q1) / 1.349, std), np.maximum(std, typical))
    return np.where(spread > 0, spread, 1.0)


def embed_image_blocks(blocks: Callable[[], Iterator[tuple[int, np.ndarray]]], rows: np.ndarray, n_rows: int, seed: int = 0) -> np.ndarray:
    """``embed`` of the images ``rows`` (sorted indices among ``n_rows``) of a column read a block at a time
    (``blocks()``: ``labelq.ingest.images.decode_blocks``, read twice), never decoded whole: the same vectors
    as ``embed`` of those rows decoded at once, up to float rounding."""
    keep = np.zeros(n_rows, dtype=bool)
    keep[rows] = True

    def thumbs():
        for start, block in blocks():
            mine = keep[start : start + len(block)]
            if mine.any():
                yield _thumbnails(block[mine]).reshape(int(mine.sum()), -1)

    return _unit(_project(thumbs, len(rows), seed))


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    X /= np.where(norms > 0, norms, 1.0)
    return X


def _thumbnails(images: np.ndarray) -> np.ndarray:
    """``(N, H, W, C)`` images averaged over f x f pixel blocks so that neither side exceeds ``THUMB`` (a view when already small)."""
    n, h, w, c = images.shape
    f = -(-max(h, w) // THUMB)
    if f <= 1:
        return images
    out = np.empty((n, h // f, w // f, c), dtype=np.float32)
    step = max(1, DECODED_BLOCK_BYTES // (h * w * c * 4))  # images made float32 at a time
    for s in range(0, n, step):
        block = images[s : s + step, : h // f * f, : w // f * f].astype(np.float32)
        out[s : s + step] = block.reshape(len(block), h // f, f, w // f, f, c).mean(axis=(2, 4))
    return out


def _project(blocks: Callable[[], Iterable[np.ndarray]], n: int, seed: int) -> np.ndarray:
    """Centre on the mean row and project on the first ``DIMS`` principal components (float32); ``blocks()``
    gives the ``n`` rows' flat vectors in order, a block at a time, and is read twice (the mean and the
    sample, then the projection), so the rows need not be in memory at once.

    The components are the covariance's top eigenvectors over a sample of ``PCA_SAMPLE`` rows (numpy's
    ``eigh``; at most ``THUMB`` x ``THUMB`` x 3 dimensions): no scikit-learn import, which alone costs
    135 MB, in an image audit that otherwise never loads it."""
    from ..io import release_freed_memory

    total, picked, sample, first = None, None, None, 0
    for block in blocks():
        if total is None:
            total = np.zeros(block.shape[1], dtype=np.float64)
            if block.shape[1] > DIMS:
                picked = np.sort(np.random.default_rng(seed).choice(n, min(n, PCA_SAMPLE), replace=False))
                sample = np.empty((len(picked), block.shape[1]), dtype=np.float64)  # filled in place: one copy of the sample
        total += block.sum(axis=0, dtype=np.float64)
        if picked is not None:
            here = (picked >= first) & (picked < first + len(block))
            sample[here] = block[picked[here] - first]
        first += len(block)
    if total is None:
        return np.zeros((0, DIMS), dtype=np.float32)
    mean = (total / max(n, 1)).astype(np.float32)
    basis = None
    if picked is not None:
        sample -= mean
        _, vectors = np.linalg.eigh(sample.T @ sample)  # ascending eigenvalues
        basis = np.ascontiguousarray(vectors[:, ::-1][:, : min(DIMS, len(sample))], dtype=np.float32)
        del sample, vectors
        release_freed_memory()
    out = np.empty((n, len(mean) if basis is None else basis.shape[1]), dtype=np.float32)
    first = 0
    for block in blocks():
        centred = block.astype(np.float32) - mean
        out[first : first + len(block)] = centred if basis is None else centred @ basis
        first += len(block)
    return out


def _text_vectors(texts: list[str], seed: int) -> np.ndarray:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    # at most TEXT_FEATURES terms: the SVD's work arrays are terms x (DIMS + 10) float64 (200,000 terms: 295 MB at 5,000 reviews)
    tfidf = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1, max_features=TEXT_FEATURES, dtype=np.float32).fit_transform(texts)
    dims = min(DIMS, tfidf.shape[1] - 1, len(texts) - 1)
    if dims < 2:
        return tfidf.toarray()
    return TruncatedSVD(n_components=dims, algorithm="randomized", random_state=seed).fit_transform(tfidf)


def knn(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows: Euclidean distances and indices, ``(N, k)``, nearest first.

    FAISS: exact (``IndexFlatL2``) up to ``EXACT_MAX`` rows, HNSW graphs above (recall@10 0.995-1.0 in
    ``bench/neighbors.py``); queries in blocks of ``QUERY_BLOCK`` rows. A missing neighbour (HNSW can
    return fewer than asked) is at distance infinity."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its search for CPU builds is not the audit's news
    import faiss

    X = np.ascontiguousarray(X, dtype=np.float32)
    k = min(k, len(X) - 1)
    if len(X) <= EXACT_MAX:
        index = faiss.IndexFlatL2(X.shape[1])
    else:
        index = faiss.IndexHNSWFlat(X.shape[1], 32)
        index.hnsw.efConstruction, index.hnsw.efSearch = 80, 64
    index.add(X)
    parts = []
    with progress(len(X), "nearest neighbours", logger=log) as bar:
        for s in range(0, len(X), QUERY_BLOCK):
            parts.append(index.search(X[s : s + QUERY_BLOCK], k + 1))
            bar.update(min(QUERY_BLOCK, len(X) - s))
    sq, idx = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]).astype(np.int64)
    dist = np.where(idx >= 0, np.sqrt(np.maximum(sq, 0)), np.inf)
    # a row is its own nearest neighbour, except when another row is at distance 0 too: drop the row itself, wherever it is
    own = idx == np.arange(len(X))[:, None]
    keep = ~own
    keep[~own.any(axis=1), -1] = False  # the row itself was not among the k + 1: drop the farthest instead
    return dist[keep].reshape(len(X), k), idx[keep].reshape(len(X), k)


def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected components of ``n`` nodes joined by ``pairs`` ``(P, 2)``: a component label per node."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def check_neighbors(
    examples: pa.Table, options: NeighborOptions | None = None, seed: int = 0, embedder: Callable[[np.ndarray], np.ndarray] | None = None
) -> NeighborChecks:
    """Exact and near duplicates of ``examples``' rows, their leaks across splits and conflicting labels,
    and outliers; in the space ``embedder`` maps the inputs to (``(N, D)`` unit vectors, e.g. pretrained
    embeddings: ``labelq.predict.embeddings``) when given, else in the inputs' own space (``embed``)."""
    t0 = time.perf_counter()
    options = options or NeighborOptions()
    if not has_inputs(examples):
        raise InputError("near-duplicate checks need the rows' inputs", "pass --no-data-checks for a table of labels only")
    modality = S.info_of(examples).modality
    blocks = image_blocks(examples) if embedder is None and modality == "image" else None
    if blocks is None:
        inputs = read_inputs(examples)
        keys = content_keys(modality, inputs)
    else:  # more decoded pixels than DECODE_BUDGET: hashed, then embedded, a block of images at a time
        inputs = None
        keys = np.concatenate([content_keys(modality, block) for _, block in blocks()])
    _, first, group = np.unique(keys, return_index=True, return_inverse=True)  # rows with equal content share a group
    reps = np.sort(first)
    group_of_rep = np.empty(len(first), dtype=np.int64)  # renumber groups in row order of their first row
    group_of_rep[group[reps]] = np.arange(len(reps))
    rep_of_row = group_of_rep[group]
    exact = np.bincount(rep_of_row, minlength=len(reps))[rep_of_row] > 1

    if embedder is not None:
        X = np.ascontiguousarray(embedder(inputs)[reps], dtype=np.float32)  # all rows: the cache is keyed by the whole content
    elif blocks is not None:
        X = embed_image_blocks(blocks, reps, len(keys), seed)
    else:
        X = embed(modality, inputs if len(reps) == len(inputs) else inputs[reps], seed)  # no exact duplicates: no copy of the rows
    del inputs
    u = len(reps)
    pairs = np.empty((0, 2), dtype=np.int64)
    radius = median_nn = 0.0
    rep_score = np.ones(u)
    outlier_cut = np.inf
    if u > 2:
        dist, idx = knn(X, K)
        median_nn = float(np.median(dist[np.isfinite(dist[:, 0]), 0]))
        radius = options.near_duplicate_radius * median_nn
        close = dist <= radius
        pairs = np.column_stack([np.repeat(np.arange(u), close.sum(axis=1)), idx[close]])
        rep_score, outlier_cut = outlier_scores(dist, options.outlier_iqr)
    # sets: near pairs among distinct contents, then every row of an exact group joins its content's set
    comp = _components(u, pairs)
    rep_set = np.where(np.bincount(comp, minlength=u)[comp] > 1, comp, -1)
    row_set = rep_set[rep_of_row]
    alone = (row_set < 0) & exact  # an exact group near no other content is a set of its own
    row_set[alone] = u + rep_of_row[alone]
    _, dense = np.unique(row_set, return_inverse=True)
    set_id = np.where(row_set >= 0, dense - (row_set < 0).any(), -1).astype(np.int64)

    leak, conflict = _set_flags(set_id, examples)
    score = rep_score[rep_of_row]
    checks = NeighborChecks(set_id, exact, leak, conflict, score, score > outlier_cut)
    checks.info = NeighborSummary(
        space=space_name(modality, embedder is not None),
        dims=int(X.shape[1]),
        distinct_contents=int(u),
        median_nn_distance=median_nn,
        near_duplicate_radius=options.near_duplicate_radius,
        near_duplicate_distance=radius,
        near_duplicate_rows=int((set_id >= 0).sum()),
        near_duplicate_sets=int(len(np.unique(set_id[set_id >= 0]))),
        exact_duplicate_rows=int(exact.sum()),
        leaking_rows=int(leak.sum()),
        conflicting_rows=int(conflict.sum()),
        outlier_iqr=options.outlier_iqr,
        outlier_threshold=float(outlier_cut) if np.isfinite(outlier_cut) else None,
        outlier_rows=int(checks.is_outlier.sum()),
        seconds=round(time.perf_counter() - t0, 2),
    )
    log.info(
        "near duplicates (%s, %d dims): %d rows in %d sets (%d rows with an exact copy, %d in sets across splits, %d in sets with conflicting labels); %d outliers; in %.1fs",
        checks.info.space,
        checks.info.dims,
        checks.info.near_duplicate_rows,
        checks.info.near_duplicate_sets,
        checks.info.exact_duplicate_rows,
        checks.info.leaking_rows,
        checks.info.conflicting_rows,
        checks.info.outlier_rows,
        checks.info.seconds,
    )
    return checks


def outlier_scores(dist: np.ndarray, iqr_factor: float) -> tuple[np.ndarray, float]:
    """Each row's outlier score from its distances to its nearest neighbours ``(N, k)``, nearest first, and
    the score above which a row is an outlier.

    The score is the distance to the k-th nearest neighbour over the dataset's median of it (1.0: a
    typical row). The k-th distance, not the mean of the k (Datalab's): a handful of similar foreign
    rows are each other's nearest neighbours, which pulls their mean distance down to a typical row's,
    while the k-th neighbour of each is still a host row. A group of more than k alike rows is a
    cluster, not outliers, by this rule. The threshold is Tukey's fence on the scores: the third
    quartile plus ``iqr_factor`` interquartile ranges (1.5 by default, Tukey's; on the planted
    outliers of ``bench/outliers.py``, 3.0 flagged none in the unit-length spaces, and Datalab's 1.7
    missed more)."""
    kth = dist[:, -1]
    kth = np.where(np.isfinite(kth), kth, np.nanmax(np.where(np.isfinite(kth), kth, np.nan)))
    median = float(np.median(kth))
    score = kth / median if median > 0 else np.zeros_like(kth)
    q1, q3 = np.percentile(score, [25, 75])
    return score, float(q3 + iqr_factor * (q3 - q1))


def space_name(modality: str, embeddings: bool) -> str:
    """What the checks' space is, as the manifest records it."""
    if embeddings:
        from ..predict.embeddings import DEFAULT_ENCODER

        return f"embeddings:{DEFAULT_ENCODER[modality]}"
    return {"image": "pixels-pca", "text": "tfidf-svd", "tabular": "standardized"}[modality]


def _set_flags(set_id: np.ndarray, examples: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Per row: its set holds more than one split (leak); more than one label (conflict)."""
    n = len(set_id)
    leak, conflict = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    member = np.flatnonzero(set_id >= 0)
    if not len(member):
        return leak, conflict
    labels = kind_of(examples).codes(examples)  # equal codes, equal labels (a tag set for tags)
    for values, out in ((labels, conflict), (_split_codes(examples), leak)):
        if values is None:
            continue
        lo = np.full(set_id.max() + 1, np.iinfo(np.int64).max)
        hi = np.full(set_id.max() + 1, np.iinfo(np.int64).min)
        np.minimum.at(lo, set_id[member], values[member])
        np.maximum.at(hi, set_id[member], values[member])
        out[member] = lo[set_id[member]] != hi[set_id[member]]
    return leak, conflict


def _split_codes(examples: pa.Table) -> np.ndarray | None:
    if S.SPLIT not in examples.column_names:
        return None
    return np.unique(np.asarray(examples[S.SPLIT].cast(pa.string()).fill_null("").to_pylist(), dtype=object), return_inverse=True)[1].astype(np.int64)
