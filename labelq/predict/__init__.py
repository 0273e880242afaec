"""Out-of-sample predicted probabilities: cross-validated models, or the user's own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import schema as S
from ..errors import InputError, SourceNotFoundError
from ..options import key_values, option
from ..validation import check_pred_probs
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
)
from .models import DEFAULT_MODEL, MODELS, ModelSpec, check_model_params, register_model, resolve_model
from .probs import GivenProbs

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
    pred_probs: str | None = option("--pred-probs", type="file", help="Out-of-sample probabilities (.npy in row order or Parquet keyed by id); skips training.")

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


def load_pred_probs(path: str | Path, examples: pa.Table) -> pa.Table | GivenProbs:
    """Read user-supplied out-of-sample probabilities and align them with ``examples``, validated (shape,
    NaN, negatives; rows summing to within 1e-2 of 1 are renormalized with a warning).

    ``.npy``: an ``(N, K)`` array in the examples' row order, returned as a ``GivenProbs`` that reads it
    by chunks (never whole in memory). Parquet: an ``id`` column plus either a list column ``pred_probs``
    or one column per class name, aligned by id and returned as the contract's pred_probs table.
    """
    path = Path(path)
    info = S.info_of(examples)
    n, k = examples.num_rows, len(info.class_names)
    if not path.exists():
        raise SourceNotFoundError(f"the pred_probs file {str(path)!r} does not exist", "pass the path of a .npy or Parquet file")
    if path.suffix == ".npy":
        return GivenProbs.open(path, examples[S.ID], k)
    elif path.suffix in (".parquet", ".pq"):
        t = pq.read_table(path)
        if S.ID not in t.column_names:
            raise InputError(f"the pred_probs table {path} has no 'id' column (columns: {t.column_names})", "key each row by the example's id")
        if S.PRED_PROBS in t.column_names:
            probs = _list_column_array(t[S.PRED_PROBS], k, path)
        elif all(c in t.column_names for c in info.class_names):
            probs = np.column_stack([t[c].to_numpy(zero_copy_only=False) for c in info.class_names])
        else:
            raise InputError(f"the pred_probs table {path} has neither a 'pred_probs' column nor one column per class {info.class_names}")
        given = t[S.ID].cast(pa.string()).combine_chunks()
        if len(pc.unique(given)) != len(given):
            raise InputError(f"the pred_probs table {path} has duplicate ids", "give one row per example")
        want = examples[S.ID].combine_chunks()
        pos = pc.index_in(want, value_set=given)
        if pos.null_count or len(given) != len(want):
            missing = want.filter(pos.is_null()).to_pylist()
            extra = given.filter(pc.invert(pc.is_in(given, value_set=want))).to_pylist()
            raise InputError(
                f"the ids in {path} do not match the data: {len(missing)} examples have no prediction (e.g. {missing[:3]}), {len(extra)} predictions have no example (e.g. {sorted(extra)[:3]})",
                "predict every example of this source (and split) exactly once, keyed by the same ids",
            )
        order = pos.to_numpy()
        probs = probs if np.array_equal(order, np.arange(len(order))) else probs[order]
    else:
        raise InputError(f"cannot read pred_probs from {path}", "use a .npy array in row order or a Parquet table keyed by id")
    probs = check_pred_probs(probs, n, k)
    return pred_probs_table(examples[S.ID], probs, None, f"user:{path.name}")


def _list_column_array(col: pa.ChunkedArray, k: int, path: Path) -> np.ndarray:
    """``(N, K)`` from a list column, without a Python list per row; every row must hold ``k`` values."""
    col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)):
        raise InputError(f"the pred_probs column of {path} must hold lists of {k} numbers, got {col.type}")
    lengths = pc.list_value_length(col).fill_null(-1).to_numpy(zero_copy_only=False)
    wrong = np.flatnonzero(lengths != k)
    if len(wrong):
        raise InputError(f"pred_probs rows must hold one value per class ({k}), but {len(wrong)} rows hold another number (rows {wrong[:5].tolist()})")
    values = col.flatten().to_numpy(zero_copy_only=False)
    return values.reshape(-1, k)
