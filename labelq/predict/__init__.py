"""Out-of-sample predicted probabilities: cross-validated models, or the user's own."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import schema as S
from ..errors import InputError, SourceNotFoundError
from ..io import atomic_write, file_sha256, parquet_batches, parquet_files, parquet_schema
from ..labelkind import kind_of
from ..options import key_values, option
from .crossval import (
    FoldCache,
    FoldPlan,
    assemble,
    cross_val_pred_probs,
    make_folds,
    plan_folds,
    pred_probs_array,
    pred_probs_table,
    pred_probs_view,
    predict_fold,
    training_margins,
)
from .models import DEFAULT_MODEL, MODELS, ModelSpec, check_model_params, register_model, resolve_model
from .probs import GivenProbs, rows_per_chunk

__all__ = [
    "GivenProbs",
    "PredictOptions",
    "FoldCache",
    "FoldPlan",
    "check_model_params",
    "ModelSpec",
    "MODELS",
    "DEFAULT_MODEL",
    "assemble",
    "cross_val_pred_probs",
    "load_pred_probs",
    "make_folds",
    "plan_folds",
    "pred_probs_array",
    "pred_probs_view",
    "pred_probs_table",
    "predict_fold",
    "register_model",
    "resolve_model",
    "training_margins",
]


@dataclass
class PredictOptions:
    """Where the out-of-sample probabilities come from: cross-validated ``model`` folds, or the user's ``pred_probs``."""

    model: str = option("--model", default="auto", show_default=True, help="cnn, tfidf-logreg, hgb, logreg, or auto (by modality).")
    model_params: dict[str, Any] = option(
        "--model-param", dest="model_params", default={}, multiple=True, from_cli=key_values, help="Model parameter KEY=VALUE (repeatable), e.g. epochs=3."
    )
    n_folds: int = option("--folds", dest="n_folds", default=5, type=int, show_default=True, help="Cross-validation folds.")
    seed: int = option("--seed", default=0, type=int, show_default=True, help="Seed of the folds, the models and every sample.")
    fold_threads: int | None = option(
        "--fold-threads",
        type=int,
        help="Compute threads per fold (default: every core; a local Dask cluster splits the cores). Same seed and same value: identical results anywhere.",
    )
    pred_probs: str | None = option(
        "--pred-probs", type="path", help="Out-of-sample probabilities (.npy in row order, or a Parquet file or folder of them keyed by id); skips training."
    )

    def __post_init__(self) -> None:
        if self.fold_threads is not None and (not isinstance(self.fold_threads, int) or self.fold_threads < 1):
            raise InputError(
                f"fold_threads must be a whole number >= 1, got {self.fold_threads!r}", "pass --fold-threads 1 (or more), or leave it out to use every core"
            )
        if self.pred_probs is None:  # the model and its parameters, before anything is read or trained
            if self.model in (None, "auto"):  # the modality is not known yet: every default model that has these parameters
                for model in sorted(set(DEFAULT_MODEL.values())):
                    if set(self.model_params) <= set(MODELS[model].defaults):
                        check_model_params(model, self.model_params)
            else:
                check_model_params(self.model, self.model_params)


def load_pred_probs(path: str | Path, examples: pa.Table, cache_dir: str | Path | None = None) -> GivenProbs:
    """Read user-supplied out-of-sample probabilities and align them with ``examples``, validated (shape,
    NaN, negatives; rows summing to within 1e-2 of 1 are renormalized with a warning), as a
    ``GivenProbs`` that reads them by chunks: they never have to fit in memory. A multi-label dataset's
    pred_probs are a probability per tag, each in [0, 1], whatever their sums.

    ``.npy``: an ``(N, K)`` array in the examples' row order, read where it is. Parquet (a file, or a
    folder of part files as a distributed job writes them): an ``id`` column plus either a list column
    ``pred_probs`` or one column per class name, in any row order; it is read a batch at a time into
    an ``.npy`` in the examples' order under ``cache_dir`` (the store's cache:
    ``<store>/cache/pred_probs/``), kept for the next run on the same files and ids.
    """
    path = Path(path)
    k = len(S.info_of(examples).class_names)
    kind = kind_of(examples)  # tags: a probability per tag, each in [0, 1]; rows need not sum to 1; regression: predicted values
    form = {"sum_to_one": kind.sum_to_one, "bounded": kind.bounded}
    if not path.exists():
        raise SourceNotFoundError(f"the pred_probs file {str(path)!r} does not exist", "pass the path of a .npy or Parquet file, or a folder of Parquet files")
    if path.suffix == ".npy" and path.is_file():
        return GivenProbs.open(path, examples[S.ID], k, **form)
    if path.suffix not in (".parquet", ".pq") and not path.is_dir():
        raise InputError(f"cannot read pred_probs from {path}", "use a .npy array in row order, or a Parquet table (a file or a folder of them) keyed by id")
    from ..io import CACHE, PRED_PROBS, default_root

    cache = Path(cache_dir) if cache_dir is not None else default_root() / CACHE  # the default store's cache
    aligned = parquet_to_npy(path, examples, cache / PRED_PROBS)
    return GivenProbs.open(aligned, examples[S.ID], k, model=f"user:{path.name}", **form)


def parquet_to_npy(path: Path, examples: pa.Table, folder: Path) -> Path:
    """The pred_probs of the Parquet table ``path`` (a file, or a folder of part files) in ``examples``'
    row order, as ``folder/<key>.npy`` (float32 when the file's values are, else float64), written a
    batch at a time; the key is the files' and the ids' content, so a later run on the same inputs reuses it."""
    info = S.info_of(examples)
    k = len(info.class_names)
    try:
        files = parquet_files(path)
        schema = parquet_schema(path)
    except (OSError, pa.ArrowInvalid) as err:
        raise InputError(f"cannot read the pred_probs table {path}: {err}", "write it again with pyarrow or pandas (to_parquet)") from err
    if not files:
        raise InputError(f"the pred_probs folder {path} holds no Parquet files", "write the predictions there as .parquet files, or pass one file")
    names = schema.names
    if S.ID not in names:
        raise InputError(f"the pred_probs table {path} has no 'id' column (columns: {names})", "key each row by the example's id")
    if S.PRED_PROBS in names:
        columns = [S.PRED_PROBS]
        value_type = schema.field(S.PRED_PROBS).type
        value_type = getattr(value_type, "value_type", value_type)
    elif all(c in names for c in info.class_names):
        columns = list(info.class_names)
        value_type = pa.float64()
    else:
        raise InputError(f"the pred_probs table {path} has neither a 'pred_probs' column nor one column per class {info.class_names}")
    try:  # the parts one at a time (a distributed job may write more of them than a process may hold open)
        given = pa.chunked_array([_read_ids(f) for f in files], pa.string()).combine_chunks()
    except (OSError, pa.ArrowInvalid, KeyError) as err:
        raise InputError(
            f"cannot read the ids of the pred_probs table {path}: {err}", "give every part an 'id' column, written with pyarrow or pandas"
        ) from err
    if len(pc.unique(given)) != len(given):
        raise InputError(f"the pred_probs table {path} has duplicate ids", "give one row per example")
    want = examples[S.ID].cast(pa.string()).combine_chunks()
    pos = pc.index_in(want, value_set=given)
    if pos.null_count or len(given) != len(want):
        missing = want.filter(pos.is_null()).to_pylist()
        extra = given.filter(pc.invert(pc.is_in(given, value_set=want))).to_pylist()
        raise InputError(
            f"the ids in {path} do not match the data: {len(missing)} examples have no prediction (e.g. {missing[:3]}), {len(extra)} predictions have no example (e.g. {sorted(extra)[:3]})",
            "predict every example of this source (and split) exactly once, keyed by the same ids",
        )
    dest = np.empty(len(want), np.int64)  # dest[file row] = the example's row
    dest[pos.to_numpy()] = np.arange(len(want))
    ids_digest = hashlib.sha256(b"".join(bytes(b) for b in want.buffers()[1:] if b is not None)).hexdigest()
    files_digest = ":".join(file_sha256(f) for f in files)  # the parts' contents, in reading order
    key = hashlib.sha256(f"{files_digest}:{ids_digest}:{k}".encode()).hexdigest()[:32]
    out = folder / f"{key}.npy"
    if out.is_file():
        return out
    dtype = np.float32 if value_type == pa.float32() else np.float64
    rows = rows_per_chunk(k, dtype)

    def write(tmp: str) -> None:
        np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(len(want), k)).flush()
        first = 0
        for batch in (b for f in files for b in _batches(f, columns, rows)):
            values = (
                _list_column_array(batch.column(0), k, path)
                if columns == [S.PRED_PROBS]
                else np.column_stack([c.to_numpy(zero_copy_only=False) for c in batch.columns])
            )
            target = np.lib.format.open_memmap(tmp, mode="r+")  # mapped a batch at a time: its written pages go with it
            target[dest[first : first + len(values)]] = values
            target.flush()
            del target
            first += len(values)

    return atomic_write(out, write)


def _read_ids(file: Path) -> pa.ChunkedArray:
    with pq.ParquetFile(file) as source:
        return source.read(columns=[S.ID])[S.ID].cast(pa.string())


def _batches(file: Path, columns: list[str], rows: int) -> Iterator[pa.RecordBatch]:
    with pq.ParquetFile(file) as source:
        yield from parquet_batches(source, columns, rows)


def _list_column_array(col: pa.ChunkedArray | pa.Array, k: int, path: Path) -> np.ndarray:
    """``(N, K)`` from a list column, without a Python list per row; every row must hold ``k`` values."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)):
        raise InputError(f"the pred_probs column of {path} must hold lists of {k} numbers, got {col.type}")
    lengths = pc.list_value_length(col).fill_null(-1).to_numpy(zero_copy_only=False)
    wrong = np.flatnonzero(lengths != k)
    if len(wrong):
        raise InputError(f"pred_probs rows must hold one value per class ({k}), but {len(wrong)} rows hold another number (rows {wrong[:5].tolist()})")
    values = col.flatten().to_numpy(zero_copy_only=False)
    return values.reshape(-1, k)
