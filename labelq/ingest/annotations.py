"""Sources with several annotators a row (``--annotators``), collapsed to one row an item.

Three layouts, told apart by what ``--annotators`` names:

- long form, one column of annotator names: each source row is one annotator's label of one item
  (``id, annotator, label``); the id column says which rows are the same item (the first row of an item
  gives its inputs);
- wide form, several columns: one column per annotator, holding that annotator's label of the row or
  null (CIFAR-10N's ``random_label1..3``, cleanlab's items x annotators matrix);
- one list column: each row's labels; annotators are the list positions (``#1``, ``#2``, ...), which
  name people only where every row lists them in the same order.

Every label, whoever gave it, is mapped to the class list together (a class only a minority gave is still
a class). Each item's ``label`` is the annotators' majority vote (``labelq.crowd.majority_vote``, ties by
the rarer class), which the model trains on as cleanlab's multi-annotator workflow does; the labels
themselves travel in the reserved ``annotations`` column (``list<struct<annotator, label>>``) to the
audit's consensus step (``labelq.crowd``) and into the published rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import schema as S
from ..crowd import Annotations, majority_vote
from ..errors import InputError

log = logging.getLogger(__name__)


def collapse_annotations(
    table: pa.Table, columns: Sequence[str], label_col: str | None, id_col: str | None, class_names: Sequence[str] | None, to_indices
) -> tuple[pa.Table, np.ndarray, list[str], dict[str, int], pa.Array]:
    """One row an item: ``(table without the annotation columns, majority labels, class names, label mapping,
    the annotations column)``. ``to_indices(values, class_names, ids)`` maps raw labels to class indices."""
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise InputError(f"--annotators names columns {missing} that are not in the data; its columns are {table.column_names}", "fix --annotators")
    if len(columns) == 1 and not S.is_list_type(table.schema.field(columns[0]).type):
        table, item, who, names, raw = _long_form(table, columns[0], label_col, id_col)
        drop = [columns[0], label_col]
    else:
        item, who, names, raw = _list_form(table, columns[0]) if len(columns) == 1 else _wide_form(table, columns)
        drop = list(columns)
        if label_col is not None and label_col not in columns and label_col in table.column_names:
            raise InputError(
                f"the source has a label column {label_col!r} beside the annotators' columns {list(columns)}: the label is the annotators' consensus",
                f"drop or rename {label_col!r}, or pass the annotators in long form",
            )
    n = table.num_rows
    row_ids = pa.array(np.arange(n).astype(str))[pa.array(item)] if id_col is None else table[id_col].combine_chunks().cast(pa.string()).take(pa.array(item))
    labels, class_names, mapping = to_indices(pa.chunked_array([raw]), class_names, row_ids)
    ann = Annotations(item, who, labels, n, names, len(class_names))
    majority = majority_vote(ann)
    order = np.lexsort((ann.annotator, ann.item))
    offsets = np.concatenate([[0], np.cumsum(ann.num_annotations)]).astype(np.int32)
    structs = pa.StructArray.from_arrays(
        [pa.array(np.asarray(names, dtype=object)[ann.annotator[order]], pa.string()), pa.array(ann.label[order])], ["annotator", "label"]
    )
    column = pa.ListArray.from_arrays(pa.array(offsets), structs)
    counts = ann.num_annotations
    log.info(
        "%s annotations by %d annotators on %s rows (%s a row on average, %d rows with one)",
        f"{len(item):,}",
        len(names),
        f"{n:,}",
        f"{counts.mean():.2f}",
        int((counts == 1).sum()),
    )
    return table.drop_columns([c for c in dict.fromkeys(drop) if c in table.column_names]), majority, list(class_names), mapping, column


def _long_form(table: pa.Table, column: str, label_col: str | None, id_col: str | None) -> tuple[pa.Table, np.ndarray, np.ndarray, list[str], pa.Array]:
    if id_col is None:
        raise InputError(
            f"--annotators {column} reads one annotator's label a row (long form), and rows of the same item are told apart by their id; the data has no id column",
            "name it with --id-column",
        )
    if label_col is None:
        raise InputError("no label column: in long form each row holds one annotator's label", "name it with --label-column")
    ids = table[id_col].combine_chunks()
    if ids.null_count:
        raise InputError(f"the id column {id_col!r} has nulls", "give every row its item's id")
    who_col = table[column].combine_chunks()
    if who_col.null_count:
        raise InputError(f"the annotator column {column!r} has nulls", "give every row the annotator who labelled it")
    item_codes = pc.dictionary_encode(ids.cast(pa.string()))
    who_codes = pc.dictionary_encode(who_col.cast(pa.string()))
    raw_item = item_codes.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    _, first = np.unique(raw_item, return_index=True)
    first.sort()  # items in the order they first appear
    rank = np.empty(len(item_codes.dictionary), dtype=np.int64)
    rank[raw_item[first]] = np.arange(len(first))
    label = table[label_col].combine_chunks()
    keep = np.flatnonzero(label.is_valid().to_numpy(zero_copy_only=False))  # a row with no label: that annotator gave none
    return (
        table.take(pa.array(first)),
        rank[raw_item[keep]],
        who_codes.indices.to_numpy(zero_copy_only=False).astype(np.int64)[keep],
        [str(v) for v in who_codes.dictionary.to_pylist()],
        label.take(pa.array(keep)),
    )


def _wide_form(table: pa.Table, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str], pa.Array]:
    cols = [table[c].combine_chunks() for c in columns]
    types = {c.type for c in cols if not pa.types.is_null(c.type)}
    if len(types) > 1:
        cols = [c.cast(pa.string()) for c in cols]
    items, who, values = [], [], []
    for a, col in enumerate(cols):
        valid = np.flatnonzero(col.is_valid().to_numpy(zero_copy_only=False))
        if pa.types.is_floating(col.type):
            valid = valid[~np.isnan(col.to_numpy(zero_copy_only=False)[valid])]
        items.append(valid)
        who.append(np.full(len(valid), a))
        values.append(col.take(pa.array(valid)))
    return np.concatenate(items), np.concatenate(who), list(columns), pa.concat_arrays(values)


def _list_form(table: pa.Table, column: str) -> tuple[np.ndarray, np.ndarray, list[str], pa.Array]:
    lists = table[column].combine_chunks()
    if pa.types.is_fixed_size_list(lists.type):
        lists = lists.cast(pa.list_(lists.type.value_type))
    lengths = pc.list_value_length(lists).fill_null(0).to_numpy(zero_copy_only=False)
    item = np.repeat(np.arange(len(lists)), lengths)
    position = np.arange(len(item)) - np.repeat(np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    values = pc.list_flatten(lists)
    valid = np.flatnonzero(values.is_valid().to_numpy(zero_copy_only=False))
    names = [f"#{i + 1}" for i in range(int(lengths.max()) if len(lengths) else 0)]
    log.info("the annotators of %r are its list positions %s", column, names[:5])
    return item[valid], position[valid], names, values.take(pa.array(valid))


def annotations_of(examples: pa.Table, n_classes: int) -> Annotations:
    """The ``Annotations`` of an examples table's ``annotations`` column."""
    col = examples[S.ANNOTATIONS].combine_chunks()
    lengths = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(col)
    who = pc.dictionary_encode(flat.field("annotator"))
    return Annotations(
        np.repeat(np.arange(len(col)), lengths),
        who.indices.to_numpy(zero_copy_only=False),
        flat.field("label").to_numpy(zero_copy_only=False),
        len(col),
        [str(v) for v in who.dictionary.to_pylist()],
        n_classes,
    )
