"""Column names and metadata of the tables passed between stages (the data contract).

Class names and everything else a later stage needs travel in the Arrow schema metadata, under
the key ``labelq`` (JSON), and, for Hugging Face ``datasets``, under ``huggingface`` (features), so a
Parquet round trip loses nothing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

CONTRACT_VERSION = 1

ID = "id"
LABEL = "label"
SPLIT = "split"
FOLD = "fold"
PRED_PROBS = "pred_probs"
MODEL = "model"

# columns the audit adds to a published version
LABEL_SCORE = "label_score"
IS_LABEL_ISSUE = "is_label_issue"
SUGGESTED_LABEL = "suggested_label"
ISSUE_RANK = "issue_rank"
ISSUE_KIND = "issue_kind"
CORRECTED_LABEL = "corrected_label"
IS_NEAR_DUPLICATE = "is_near_duplicate"  # null: not checked (--no-data-checks, or inputs not read)
NEAR_DUPLICATE_SET = "near_duplicate_set"  # the ids of the row's set of exact and near duplicates
IS_OUTLIER = "is_outlier"  # null: not checked, like is_near_duplicate
OUTLIER_SCORE = "outlier_score"  # distance to the 10th nearest neighbour over the dataset's median of it (1.0: typical)
# multi-label versions only: per row, the tags a wrong label lacks and the tags it should not hold (labelq.multilabel)
MISSING_TAGS = "missing_tags"
EXTRA_TAGS = "extra_tags"
MULTI_LABEL_COLUMNS = (MISSING_TAGS, EXTRA_TAGS)
AUDIT_COLUMNS = (
    LABEL_SCORE,
    IS_LABEL_ISSUE,
    SUGGESTED_LABEL,
    ISSUE_RANK,
    ISSUE_KIND,
    CORRECTED_LABEL,
    IS_NEAR_DUPLICATE,
    NEAR_DUPLICATE_SET,
    IS_OUTLIER,
    OUTLIER_SCORE,
)

# columns re-labeling adds (labelq.relabel): the label set, the soft label, and where a correction came from
LABELS = "labels"
SOFT_LABEL = "soft_label"
LABEL_SOURCE = "label_source"  # null (the given label stands), "relabel" (confident correction), "review" (a person)
REVIEWER = "reviewer"
REVIEWED_AT = "reviewed_at"
ORIGINAL_LABEL = "original_label"  # the given label, beside the training label, in training exports
RELABEL_COLUMNS = (LABELS, SOFT_LABEL, LABEL_SOURCE, REVIEWER, REVIEWED_AT)
DERIVED_COLUMNS = (*AUDIT_COLUMNS, *MULTI_LABEL_COLUMNS, *RELABEL_COLUMNS)  # recomputed by labelq; never part of the content hash
ANNOTATIONS = "annotations"  # several annotators a row: list<struct<annotator, label>> (labelq.ingest.annotations)
RESERVED_COLUMNS = (ID, LABEL, SPLIT, ANNOTATIONS, *DERIVED_COLUMNS)

# issue kinds (``issue_kind``): what labelq thinks is going on with a row
ISSUE_KINDS = ("ok", "wrong_label", "multi_label", "out_of_distribution", "ambiguous")

META_KEY = b"labelq"
HF_META_KEY = b"huggingface"

MODALITIES = ("image", "text", "tabular", "tokens", "none")  # none: labels and given pred_probs only; tokens: a token a row (token tags)


def kind_name(label_kind: str | None, multi_label: bool | None) -> str:
    """The name of a table's or version's kind of label (``labelq.labelkind``): the one it names, else the
    built-in kind its label column's type implies (``tags`` for lists, ``single`` for one class a row)."""
    return label_kind or ("tags" if multi_label else "single")


@dataclass(frozen=True)
class ExamplesInfo:
    """What the examples table's metadata says about its contents.

    ``modality`` is one of ``MODALITIES``; ``inputs`` names the payload columns a model reads
    (one image column, one text column, or the numeric feature columns).
    ``label_mapping`` maps each original label value (as a string) to its class index.
    ``deferred``: inputs left in a Parquet source until publish (``labelq.deferred.DeferredInputs``, as
    JSON); only an examples table read for an audit that trains no model has it, never a version.
    ``multi_label``: each row's ``label`` is a list of tag indices (``labelq.multilabel``), not one class index.
    ``label_kind``: the registered kind of label (``labelq.labelkind``) when it is not the one the label
    column's type implies (``kind_name``: ``tags`` for lists, ``single`` otherwise).
    """

    class_names: list[str]
    modality: str
    inputs: list[str]
    label_mapping: dict[str, int] = field(default_factory=dict)
    source: str = ""
    contract_version: int = CONTRACT_VERSION
    deferred: dict[str, Any] | None = None
    multi_label: bool = False
    label_kind: str | None = None

    @property
    def kind_name(self) -> str:
        return kind_name(self.label_kind, self.multi_label)

    def to_json(self) -> str:
        obj = asdict(self)
        if obj["label_kind"] is None:  # the built-in kinds are known by the label column's type
            del obj["label_kind"]
        if obj["deferred"] is None:  # what every published file says: its inputs are in the version
            del obj["deferred"]
        if not obj["multi_label"]:  # single-label tables read as they did before multi-label existed
            del obj["multi_label"]
        return json.dumps(obj, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> ExamplesInfo:
        return cls(**json.loads(text))


def hf_features(schema: pa.Schema, class_names: list[str]) -> dict[str, Any]:
    """Hugging Face ``Features`` (as the dict ``datasets`` writes in a schema's metadata) for ``schema``:
    label columns become ``ClassLabel`` (a list of labels, a multi-label row's tags: ``Sequence(ClassLabel)``; a regression
    target's float values stay ``Value``),
    image structs ``Image``, the rest as ``Features.from_arrow_schema`` makes them. Written out rather than built with ``datasets``, whose import costs about 70 MB and 1.5 s
    for a few dicts; a test compares the two."""
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    class_label = {"names": list(class_names), "_type": "ClassLabel"}
    features = {f.name: {"_type": "Image"} if f.type == image_type else _hf_type(f.type) for f in schema}
    for f in schema:
        if f.name in (LABEL, SUGGESTED_LABEL, CORRECTED_LABEL, ORIGINAL_LABEL, LABELS, MISSING_TAGS, EXTRA_TAGS) and not pa.types.is_floating(f.type):
            is_list = pa.types.is_list(f.type) or pa.types.is_large_list(f.type)
            features[f.name] = {"feature": dict(class_label), "_type": "List"} if is_list else dict(class_label)
    return features


_HF_DTYPES = {pa.bool_(): "bool", pa.float16(): "float16", pa.float32(): "float32", pa.float64(): "float64", pa.date32(): "date32", pa.date64(): "date64"}


def _hf_type(t: pa.DataType) -> dict[str, Any]:
    """``datasets.features.generate_from_arrow_type(t)``, as a dict."""
    if pa.types.is_struct(t):
        return {t.field(i).name: _hf_type(t.field(i).type) for i in range(t.num_fields)}
    if pa.types.is_fixed_size_list(t):
        return {"feature": _hf_type(t.value_type), "length": t.list_size, "_type": "List"}
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return {"feature": _hf_type(t.value_type), "_type": "List" if pa.types.is_list(t) else "LargeList"}
    if pa.types.is_dictionary(t):
        return _hf_type(t.value_type)
    if isinstance(t, pa.ExtensionType) or pa.types.is_nested(t):
        raise ValueError(f"Arrow type {t} has no Hugging Face feature")
    return {"dtype": _HF_DTYPES.get(t, str(t)), "_type": "Value"}


def with_info(table: pa.Table, info: ExamplesInfo) -> pa.Table:
    """Return ``table`` with ``info`` (and matching Hugging Face features) in its schema metadata."""
    meta = dict(table.schema.metadata or {})
    meta[META_KEY] = info.to_json().encode()
    meta[HF_META_KEY] = json.dumps({"info": {"features": hf_features(table.schema, info.class_names)}}).encode()
    return table.replace_schema_metadata(meta)


def replace_columns(table: pa.Table, columns: dict[str, pa.Array | pa.ChunkedArray]) -> pa.Table:
    """``table`` with each of ``columns`` replaced in place, or appended when the table lacks it (metadata kept)."""
    out = table
    for name, arr in columns.items():
        out = out.set_column(out.column_names.index(name), name, arr) if name in out.column_names else out.append_column(name, arr)
    return out.replace_schema_metadata(table.schema.metadata)


def corrections(table: pa.Table) -> np.ndarray:
    """``(N,)`` int64: each row's ``corrected_label``, -1 where it has none (or the table has no such column)."""
    if CORRECTED_LABEL not in table.column_names:
        return np.full(table.num_rows, -1, dtype=np.int64)
    return table[CORRECTED_LABEL].fill_null(-1).to_numpy().astype(np.int64)


def is_list_type(t: pa.DataType) -> bool:
    """An Arrow list type (list, large list or fixed-size list): a column of several values a row."""
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def pylists(table: pa.Table, *names: str) -> list[list]:
    """Each named column as a Python list, a list of None where the table has no such column."""
    return [table[name].to_pylist() if name in table.column_names else [None] * table.num_rows for name in names]


def correction_counts(table: pa.Table) -> dict[str, int]:
    """Where the corrected labels came from: ``corrected`` (rows with a ``corrected_label``), ``by_rule``
    (a re-labeling rule: ``label_source = 'relabel'``), ``by_review`` (a person changed the label),
    ``at_audit`` (the audit's ``--auto-fix``) and ``reviewed`` (rows a person answered, changed or not)."""
    n = table.num_rows
    valid = np.asarray(table[CORRECTED_LABEL].is_valid()) if CORRECTED_LABEL in table.column_names else np.zeros(n, dtype=bool)
    source = np.asarray(table[LABEL_SOURCE].to_pylist(), dtype=object) if LABEL_SOURCE in table.column_names else np.full(n, None, dtype=object)
    return {
        "corrected": int(valid.sum()),
        "by_rule": int((valid & (source == "relabel")).sum()),
        "by_review": int((valid & (source == "review")).sum()),
        "at_audit": int((valid & (source == None)).sum()),  # noqa: E711 (elementwise)
        "reviewed": int((source == "review").sum()),
    }


def describe_corrections(counts: dict[str, int]) -> str:
    """``correction_counts`` for people: "29 corrected: 0 by the correction rule, 29 by reviewers (60 rows reviewed)"."""
    parts = [f"{counts['by_rule']:,} by the correction rule", f"{counts['by_review']:,} by reviewers ({counts['reviewed']:,} rows reviewed)"]
    if counts["at_audit"]:
        parts.append(f"{counts['at_audit']:,} by the audit's --auto-fix")
    return f"{counts['corrected']:,} corrected: " + ", ".join(parts)


def reviewed(table: pa.Table) -> np.ndarray:
    """``(N,)`` bool: the rows a person reviewed (``label_source = 'review'``; none before any review)."""
    if LABEL_SOURCE not in table.column_names:
        return np.zeros(table.num_rows, dtype=bool)
    return np.asarray(table[LABEL_SOURCE].to_pylist(), dtype=object) == "review"


def effective_label(labels: np.ndarray, corrected: np.ndarray) -> np.ndarray:
    """The label a row stands for: its correction where it has one (``corrected >= 0``), else its given label.
    SQL's twin is the ``effective_label`` column of the ``rows`` view, ``coalesce(corrected_label, label)``."""
    return np.where(np.asarray(corrected) >= 0, corrected, labels).astype(np.int64)


def effective_labels(table: pa.Table) -> np.ndarray:
    """``effective_label`` of every row of a published version's table: ``(N,)`` int64."""
    return effective_label(table[LABEL].to_numpy(), corrections(table))


def info_of(table: pa.Table | pa.Schema) -> ExamplesInfo:
    """The ``ExamplesInfo`` stored in a table's (or schema's) metadata."""
    schema = table.schema if isinstance(table, pa.Table) else table
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        from .errors import InputError

        raise InputError(
            "this table has no labelq metadata (class names, modality)",
            "build examples tables with labelq.ingest.load_examples() or labelq.ingest.examples_from_table()",
        )
    return ExamplesInfo.from_json(raw)


def pred_probs_schema(n_classes: int) -> pa.Schema:
    """Schema of the pred_probs table: ``id``, ``fold``, ``pred_probs`` float32[K], ``model``."""
    return pa.schema(
        [
            pa.field(ID, pa.string(), nullable=False),
            pa.field(FOLD, pa.int32()),
            pa.field(PRED_PROBS, pa.list_(pa.float32(), n_classes)),
            pa.field(MODEL, pa.string()),
        ]
    )
