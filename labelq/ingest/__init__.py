"""Ingest: any supported source -> the examples table of the data contract.

``load_examples(source, ...)`` is the entry point. The examples table has ``id`` (unique string),
``label`` (int64 class index), ``split`` and the payload columns; class names, the label mapping,
the modality and the input columns travel in the schema metadata (``labelq.schema.info_of``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import schema as S
from ..deferred import DeferredInputs
from ..errors import InputError
from ..labelkind import kind_named, kind_of
from ..options import csv, option
from ..validation import check_ids, plural
from .annotations import collapse_annotations
from .builtin import LOADERS, RawSource
from .files import _class_names_from_hf_schema, read_parquet_columns, read_path
from .images import IMAGE_TYPE, decode_images
from .tokens import TOKEN_INPUTS, explode_sentences, token_column

__all__ = ["IngestOptions", "load_examples", "examples_from_raw", "load_raw", "decode_images", "LOADERS", "RawSource"]

log = logging.getLogger(__name__)

TEXT_NAMES = ("text", "review", "content", "sentence", "body", "document")
IMAGE_NAMES = ("image", "img", "picture")


@dataclass
class IngestOptions:
    """How to read a source. Every field is optional; ``None`` means 'infer' or 'use the source's default'."""

    label_column: str | None = option("--label-column", help="Column holding the labels (default: 'label').")
    id_column: str | None = option("--id-column", help="Column of unique ids (default: 'id' if present, else derived from content).")
    text_column: str | None = option("--text-column", help="Column holding the text input.")
    image_column: str | None = option("--image-column", help="Column holding the images.")
    feature_columns: Sequence[str] | None = option("--feature-columns", help="Comma-separated numeric feature columns.", from_cli=csv)
    split: str | None = option("--split", help="Audit only rows of this split (e.g. train, test).")
    classes: Sequence[str] | None = option("--classes", help="Comma-separated class names, in class-index order.", from_cli=csv)
    encoding: str | None = option("--encoding", help="Text encoding of a CSV source, e.g. latin-1 or cp1252 (default: UTF-8).")
    label_separator: str | None = option("--label-separator", help="Labels are tags joined by this separator, e.g. '|' for 'a|b' (a multi-label dataset).")
    annotators: Sequence[str] | None = option(
        "--annotators",
        help="Several annotators a row: a column of annotator names (long form: one label a row, items by --id-column), "
        "several columns (one per annotator), or one column of label lists.",
        from_cli=csv,
    )
    label_kind: str | None = option(
        "--task",
        dest="task",
        help="What a row's label is: single (one class), tags (several), regression (a number); default: inferred from the label column. "
        "A kind registered by your code (labelq.labelkind) is named the same way.",
    )
    inputs_required: bool = True  # False when pred_probs are given: no model reads the inputs


def load_raw(source: str | Path, split: str | None = None, encoding: str | None = None, defer_inputs: bool = False) -> RawSource:
    """Read a built-in dataset by name, or a file/folder by path (``encoding``: of a CSV file;
    ``defer_inputs``: a Parquet source is read lazily, see ``examples_from_raw``)."""
    s = str(source)
    if s in LOADERS and not Path(s).exists():
        return LOADERS[s]()
    return read_path(Path(s).expanduser(), split, encoding, defer_inputs)


def load_examples(source: str | Path = "digits", options: IngestOptions | None = None) -> pa.Table:
    """Read ``source`` and return its examples table (see module docstring)."""
    options = options or IngestOptions()
    lazy = not options.inputs_required and not options.annotators and options.label_kind != "tokens"  # token rows are made from the lists
    raw = load_raw(source, options.split, options.encoding, defer_inputs=lazy)
    table = examples_from_raw(raw, options)
    log.info(
        "ingested %s rows, %d %s, modality %s, from %s",
        f"{table.num_rows:,}",
        len(S.info_of(table).class_names),
        kind_of(table).what,
        S.info_of(table).modality,
        raw.description,
    )
    return table


def _pick(name: str | None, default: str | None, table: pa.Table, what: str, flag: str) -> str | None:
    col = name or default
    if col is not None and col not in table.column_names:
        raise InputError(f"the {what} column {col!r} is not in the data; its columns are {table.column_names}", f"pass the right name with {flag}")
    return col


def _tag_lists(col: pa.ChunkedArray, separator: str | None, ids: pa.Array) -> pa.ListArray | None:
    """The label column as lists of tags when it holds several labels a row: an Arrow list (Parquet list,
    Hugging Face ``Sequence``), strings split by ``separator``, or JSON lists (``'["a", "b"]'`` in every
    row); None for one label a row."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_struct(col.type):
        raise InputError(f"the label column holds structs ({col.type})", "give a class name or index a row, or a list of tags a row")
    is_string = pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
    if separator is not None:
        if not is_string:
            raise InputError(f"--label-separator {separator!r} splits text, but the label column holds {col.type}", "leave --label-separator out")
        lists = pc.split_pattern(col.cast(pa.string()), separator)
    elif S.is_list_type(col.type):
        lists = col.cast(pa.list_(col.type.value_type)) if pa.types.is_fixed_size_list(col.type) else col
    elif is_string and col.null_count < len(col) and _all_json_lists(col):
        import json

        try:
            parsed = [None if v is None else json.loads(v) for v in col.to_pylist()]
        except json.JSONDecodeError:  # class names that happen to be bracketed, '[spam]': one label a row
            return None
        try:
            lists = pa.array(parsed)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InputError(f"the label column's JSON lists mix kinds of values ({exc})", "give each row a JSON list of tag names, or of tag indices") from exc
        if not S.is_list_type(lists.type) or pa.types.is_nested(lists.type.value_type):
            raise InputError("the label column's JSON lists hold nested values", "give each row a flat JSON list of tag names or indices")
    else:
        return None
    missing = np.flatnonzero(lists.is_null().to_numpy(zero_copy_only=False))
    if len(missing):
        shown = ", ".join(repr(ids[int(i)].as_py()) for i in missing[:5])
        raise InputError(
            f"{plural(len(missing), 'row has', 'rows have')} no tag list (null), e.g. ids {shown}", "give those rows a list (an empty list: no tags)"
        )
    values = lists.flatten()
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):  # 'a | b': no blanks around tags, no empty tags
        values = pc.utf8_trim_whitespace(values)
        keep = pc.greater(pc.utf8_length(values), 0)
        lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
        rows = np.repeat(np.arange(len(lists)), lengths)
        kept = keep.to_numpy(zero_copy_only=False)
        offsets = np.concatenate([[0], np.cumsum(np.bincount(rows[kept], minlength=len(lists)))]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), values.filter(keep))
    if values.null_count:
        raise InputError("some tag lists hold nulls", "drop the nulls from the lists")
    return lists


def _all_json_lists(col: pa.Array) -> bool:
    text = pc.utf8_trim_whitespace(col.drop_null())
    return bool(pc.all(pc.and_(pc.starts_with(text, "["), pc.ends_with(text, "]"))).as_py())


def _tags_to_indices(lists: pa.ListArray, class_names: Sequence[str] | None, ids: pa.Array) -> tuple[pa.Array, list[str], dict[str, int]]:
    """Map each row's tags to tag indices: (sorted lists of indices, tag names, mapping original->index), as
    ``_labels_to_indices`` maps single labels (names, or integer indices)."""
    from ..multilabel import tag_lists, tag_matrix

    values = lists.flatten()
    rows = np.repeat(np.arange(len(lists)), pc.list_value_length(lists).fill_null(0).to_numpy(zero_copy_only=False))
    if len(values) == 0:
        raise InputError("no row has a tag: every tag list is empty", "check the label column (--label-column) and --label-separator")
    indices, names, mapping = _labels_to_indices(pa.chunked_array([values]), class_names, pa.array(ids.to_numpy(zero_copy_only=False)[rows]))
    flat = pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(lists)))]).astype(np.int32)), pa.array(indices))
    return tag_lists(tag_matrix(flat, len(names))), names, mapping  # each row's tags once, in index order


def looks_like_values(col: pa.Array) -> str | None:
    """What makes a numeric label column a regression target rather than class ids (non-integer numbers, or more
    distinct numbers than max(50, rows / 10)), for people; None where it reads as classes."""
    if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)) or len(col) == 0:
        return None
    numbers = col.to_numpy(zero_copy_only=False).astype(np.float64)
    numbers = numbers[np.isfinite(numbers)]
    if (numbers != np.trunc(numbers)).any():
        return "non-integer numbers"
    distinct = len(np.unique(numbers))
    return f"{distinct:,} distinct numbers" if distinct > max(50, len(col) // 10) else None


def _values(col: pa.ChunkedArray, ids: pa.Array) -> pa.Array:
    """A regression target's values as float64, refused (with the rows named) when they are not numbers or not finite."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type) or pa.types.is_decimal(col.type)):
        raise InputError(
            f"the label column holds {col.type} values (e.g. {col.drop_null()[:3].to_pylist()}), and a regression target must be numbers",
            "name the numeric target column with --label-column, or pass --task single to audit these labels as classes",
        )
    values = col.cast(pa.float64()).to_numpy(zero_copy_only=False)  # nulls: NaN
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        shown = ", ".join(repr(ids[int(i)].as_py()) for i in bad[:5])
        raise InputError(
            f"{plural(len(bad), 'row has', 'rows have')} no finite target value (null, NaN or infinite), e.g. ids {shown}",
            "drop those rows or fill their values before auditing",
        )
    return pa.array(values, pa.float64())


def _labels_to_indices(col: pa.ChunkedArray, class_names: Sequence[str] | None, ids: pa.Array) -> tuple[np.ndarray, list[str], dict[str, int]]:
    """Map a label column to class indices; returns (labels, class_names, mapping original->index)."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    missing_mask = col.is_null()
    if pa.types.is_floating(col.type):
        missing_mask = pc.or_(missing_mask, pc.is_nan(col))
    elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        missing_mask = pc.or_(missing_mask, pc.equal(pc.utf8_trim_whitespace(col), ""))
    missing = np.flatnonzero(missing_mask.fill_null(True).to_numpy(zero_copy_only=False))
    if len(missing):
        shown = ", ".join(repr(ids[int(i)].as_py()) for i in missing[:5])
        raise InputError(
            f"{plural(len(missing), 'row has', 'rows have')} no label (NaN, null or empty), e.g. ids {shown}",
            "drop those rows or fill their labels before auditing",
        )
    values = looks_like_values(col)
    if values:
        raise InputError(
            f"the label column holds {values} in {len(col):,} rows: it looks like a regression target, and --task single audits classes",
            "pass --task regression (or leave --task out: it is inferred), or cast class ids stored as floats to integers",
        )
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        ints = col.to_numpy(zero_copy_only=False).astype(np.int64)
        if class_names is not None:
            bad = np.flatnonzero((ints < 0) | (ints >= len(class_names)))
            if len(bad):
                raise InputError(
                    f"{plural(len(bad), 'label is', 'labels are')} not indices into the {plural(len(class_names), 'class', 'classes')} {list(class_names)[:10]}: values {sorted(set(ints[bad].tolist()))[:10]}, e.g. ids {[ids[int(i)].as_py() for i in bad[:5]]}",
                    "fix those labels or pass the complete class list with --classes",
                )
            return ints, list(class_names), {}
        uniq = np.unique(ints)
        if np.array_equal(uniq, np.arange(len(uniq))):
            return ints, [str(v) for v in uniq], {}
        mapping = {str(v): i for i, v in enumerate(uniq.tolist())}
        log.warning("labels %s are not 0..K-1; mapped them to class indices (mapping kept in the metadata)", uniq.tolist()[:10])
        return np.searchsorted(uniq, ints).astype(np.int64), [str(v) for v in uniq], mapping
    encoded = col.dictionary_encode()  # each distinct value once: no Python loop over the rows
    values = [str(v) for v in encoded.dictionary.to_pylist()]
    names = list(class_names) if class_names is not None else sorted(values)
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(v for v in values if v not in index)
    if unknown:
        raise InputError(
            f"{len(unknown)} label values are not in the class list {names[:10]}: {unknown[:10]}",
            "fix those labels, or pass the complete class list with --classes",
        )
    lookup = np.array([index[v] for v in values], dtype=np.int64)
    return lookup[encoded.indices.to_numpy(zero_copy_only=False)], names, dict(index)


def derive_ids(rows: pa.Table | Iterable[pa.RecordBatch], columns: Sequence[str]) -> list[str]:
    """Stable ids from the content of ``columns``: a hash of each row, with ``-k`` for the k-th duplicate.
    ``rows``: a table, or record batches in row order (read a batch at a time)."""
    seen: dict[str, int] = {}
    ids = []
    for batch in rows.to_batches() if isinstance(rows, pa.Table) else rows:
        hashers = [hashlib.sha1() for _ in range(batch.num_rows)]
        for name in columns:
            for h, v in zip(hashers, batch.column(name).to_pylist()):
                if isinstance(v, dict) and "bytes" in v:
                    v = v["bytes"]
                h.update(v if isinstance(v, (bytes, bytearray)) else repr(v).encode())
                h.update(b"\x1f")
        for h in hashers:
            base = h.hexdigest()[:16]
            k = seen.get(base, 0)
            seen[base] = k + 1
            ids.append(base if k == 0 else f"{base}-{k}")
    return ids


def _infer_inputs(table: pa.Table, raw: RawSource, options: IngestOptions, skip: set[str]) -> tuple[str, list[str]]:
    image = _pick(options.image_column, raw.image_column, table, "image", "--image-column")
    text = _pick(options.text_column, raw.text_column, table, "text", "--text-column")
    feats = options.feature_columns or raw.feature_columns
    if sum(x is not None and x != [] for x in (image, text, feats)) > 1:
        raise InputError("name only one kind of input: an image column, a text column, or feature columns")
    if feats:
        missing = [c for c in feats if c not in table.column_names]
        if missing:
            raise InputError(f"feature columns {missing} are not in the data; its columns are {table.column_names}", "fix --feature-columns")
        return "tabular", list(feats)
    if image:
        return "image", [image]
    if text:
        return "text", [text]
    payload = [f for f in table.schema if f.name not in skip]
    for f in payload:
        if f.name.lower() in IMAGE_NAMES and (f.type == IMAGE_TYPE or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)):
            return "image", [f.name]
    for f in payload:
        if f.name.lower() in TEXT_NAMES and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_null(f.type)):
            return "text", [f.name]
    numeric = [f.name for f in payload if pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_boolean(f.type)]
    if numeric:
        return "tabular", numeric
    strings = [f.name for f in payload if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    if len(strings) == 1:
        return "text", strings
    if not options.inputs_required:  # labels and the user's pred_probs: no model reads the inputs
        return "none", []
    raise InputError(
        f"could not tell which columns hold the inputs among {[f.name for f in payload]}",
        "name them with --text-column, --image-column or --feature-columns",
    )


def examples_from_raw(raw: RawSource, options: IngestOptions | None = None) -> pa.Table:
    """Turn a ``RawSource`` into the examples table; validates labels, ids and splits.

    From a source read lazily (``raw.deferred_from``, a Parquet source when no model trains) it reads
    every column but the inputs, which stay in the source (``ExamplesInfo.deferred``) until publish
    streams them into the version."""
    options = options or IngestOptions()
    table = raw.table  # a lazy source's: its schema, no rows yet
    stale = [c for c in S.DERIVED_COLUMNS if c in table.column_names]
    if stale:
        log.warning("dropping audit columns %s from the source (a published labelq version); they are recomputed", stale)
        table = table.drop_columns(stale)
    if table.num_rows == 0 and raw.deferred_from is None:
        raise InputError("the source has no rows", "check the path, the split and any filters")
    label_col = _pick(options.label_column, raw.label_column or ("label" if "label" in table.column_names else None), table, "label", "--label-column")
    if label_col is None and not options.annotators:
        raise InputError(f"no label column: the data has no column named 'label' (columns: {table.column_names})", "name it with --label-column")
    id_col = _pick(options.id_column, raw.id_column or ("id" if "id" in table.column_names else None), table, "id", "--id-column")
    if options.split is not None and "split" not in table.column_names:
        raise InputError(f"--split {options.split!r} was given but the data has no split column", "leave --split out, or add a 'split' column")
    class_names = list(options.classes) if options.classes else (raw.class_names or _class_names_from_hf_schema(table.schema, label_col))
    task = options.label_kind or raw.task
    if task is None and label_col and not options.annotators and raw.deferred_from is None and S.is_list_type(table.schema.field(label_col).type):
        given = options.text_column or raw.text_column
        listed = given in table.column_names and S.is_list_type(table.schema.field(given).type) if given else False
        words = token_column(table, given if listed else None, label_col)
        if words is not None and pc.all(pc.equal(pc.list_value_length(table[words]), pc.list_value_length(table[label_col]))).as_py():
            task = "tokens"
            log.info(
                "the label column %r holds a tag a token of %r in every row: audited as token tags (--task tokens; --task tags for tag sets)", label_col, words
            )
    if task == "tokens":
        if options.annotators:
            raise InputError("token tags take one tagger's tags a sentence", "leave --annotators out")
        words = token_column(table, options.text_column or raw.text_column, label_col)
        if words is None:
            raise InputError("--task tokens needs a column of token lists beside the tag lists", "name it with --text-column")
        table = explode_sentences(table, words, label_col, id_col)
        id_col = "id"
    crowd = None
    if options.annotators:  # one row an item from here on; the labels are the annotators' majority
        table, majority, class_names, mapping, crowd = collapse_annotations(table, options.annotators, label_col, id_col, class_names, _labels_to_indices)
        label_col = None
    skip = {label_col, "split"} | ({id_col} if id_col else set())
    modality, inputs = ("tokens", list(TOKEN_INPUTS)) if task == "tokens" else _infer_inputs(table, raw, options, skip)

    deferred = None
    if raw.deferred_from is not None:
        table = read_parquet_columns(raw.deferred_from, [c for c in table.column_names if c not in inputs])
        if table.num_rows == 0:
            raise InputError("the source has no rows", "check the path, the split and any filters")
    if options.split is not None:
        whole = table
        table = table.filter(pc.equal(table["split"].cast(pa.string()), options.split))
        if table.num_rows == 0:
            raise InputError(f"no rows have split {options.split!r}", f"use one of {sorted(set(whole['split'].cast(pa.string()).to_pylist()))}")
    if raw.deferred_from is not None and inputs:
        deferred = DeferredInputs.of(raw.deferred_from, inputs, options.split, id_col)
        log.info("the input columns %s stay in %s until publish: no model reads them", inputs, raw.deferred_from)
    if modality == "text" and options.inputs_required:
        text = table[inputs[0]].cast(pa.string())
        if pc.sum(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(text.fill_null(""))), 0)).as_py() in (None, 0):
            raise InputError(
                f"the text column {inputs[0]!r} is empty in every row: there is nothing for a model to read",
                "name the column that holds the text with --text-column, or give your own --pred-probs",
            )

    if id_col:
        ids = check_ids(table[id_col])
    elif inputs:
        ids = pa.array(derive_ids(deferred.batches() if deferred else table, inputs), pa.string())
    else:  # no id column and no inputs (labels + pred_probs in row order): the row number
        ids = pc.cast(pa.array(np.arange(table.num_rows)), pa.string())
    tags = None if crowd is not None else _tag_lists(table[label_col], options.label_separator, ids)
    if task is None and crowd is None and tags is None:
        values = looks_like_values(table[label_col].combine_chunks())
        if values:
            task = "regression"
            log.info("the label column %r holds %s: audited as a regression target (--task regression; --task single for classes)", label_col, values)
    if task is not None:
        kind_named(task)  # an unknown name: refused now, with the known ones
    if task == "regression" and (crowd is not None or tags is not None):
        raise InputError(
            "a regression target is one number a row, and the label column holds " + ("several annotators' labels" if crowd is not None else "lists"),
            "leave --task out, or name the numeric target column with --label-column",
        )
    if crowd is not None:
        labels = pa.array(majority, pa.int64())
    elif task == "regression":
        if options.classes:
            raise InputError("--classes names classes, and a regression target has none", "leave --classes out")
        labels, class_names, mapping = _values(table[label_col], ids), [label_col], {}
    elif tags is None:
        indices, class_names, mapping = _labels_to_indices(table[label_col], class_names, ids)
        labels = pa.array(indices, pa.int64())
    else:
        labels, class_names, mapping = _tags_to_indices(tags, class_names, ids)
    if len(set(class_names)) != len(class_names):
        raise InputError(f"class names must be unique, got {class_names}", "fix --classes")
    implied = task if task in ("regression", "tokens") else "single" if tags is None else "tags"
    if task not in (None, implied) and kind_named(task).lists != (tags is not None):
        what = ("one class a row", "a list of tags a row")
        raise InputError(
            f"label kind {task!r} takes {what[kind_named(task).lists]}, and the label column holds {what[tags is not None]}",
            "leave --task out, or give the labels it takes",
        )

    split = table["split"].cast(pa.string()) if "split" in table.column_names else pa.repeat(pa.scalar("all", pa.string()), table.num_rows)
    out = {S.ID: ids, S.LABEL: labels, S.SPLIT: split, **({S.ANNOTATIONS: crowd} if crowd is not None else {})}
    rest = [c for c in table.column_names if c not in inputs]
    for name in [*(c for c in inputs if c in table.column_names), *rest]:  # the inputs first, as a version's columns list them
        if name in (id_col, "split") or (name == label_col and name in S.RESERVED_COLUMNS):  # a 'labels' column of tags is the label
            continue
        if name in S.RESERVED_COLUMNS:
            raise InputError(f"the source has a column named {name!r}, a name labelq reserves", "rename that column")
        out[name] = table[name]
    info = S.ExamplesInfo(
        class_names=class_names,
        modality=modality,
        inputs=inputs,
        label_mapping=mapping,
        source=raw.description,
        deferred=deferred.to_json() if deferred else None,
        multi_label=tags is not None,
        label_kind=None if task in (None, implied) and implied in ("single", "tags") else task,
    )
    return S.with_info(pa.table(out), info)
