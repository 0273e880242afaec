"""``tokens``: a tag a token (part of speech, named entities), the fourth built-in kind (``labelq.labelkind``).

Ingest turns each sentence into one row a token (``labelq.ingest.tokens``: ``id`` ``<sentence>:<position>``,
``sentence_id``, ``position``, ``token``; modality ``tokens``), so a token is a row with one class: everything of the
``single`` kind applies unchanged, per token: the folds keep a sentence's tokens together (``groups``), the default
model is a CRF that reads each token's sentence (``labelq.predict.crf``), confident learning runs on the flattened
tokens (cleanlab's ``token_classification.filter.find_label_issues`` does the same: the flags are equal, tested), a
sentence's score is its lowest token score (cleanlab's ``get_label_quality_scores``, ``method="min"``: the catalog's
``sentences`` view), the corrections with a guaranteed precision certify tokens, and the benchmark scores token
accuracy. What is its own: the catalog's ``sentences`` and ``token_confusions`` views (the most common given and
suggested tags of a word among flagged tokens, as cleanlab's ``common_label_issues``), the report's and the review
app's view of a token in its sentence, and the export, which writes a sentence a row again (``tokens`` and the tag
lists as ``Sequence(ClassLabel)``). Refused: LLM judges and the detectors that read features (a token's features are
its sentence's).
"""

from __future__ import annotations

import dataclasses
import html
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import schema as S
from ..errors import InputError
from ..ingest.tokens import POSITION, SENTENCE_ID, TOKEN
from ..labelkind import register
from ..report import plots
from .single import SingleLabel

CONTEXT = 512  # rows read around a token to find its sentence (the longest sentence labelq shows whole)
TOP_CONFUSIONS = 15  # the report's most common tag errors


class TokenTags(SingleLabel):
    name = "tokens"
    what = "tags (one a token)"
    accuracy_name = "token accuracy"
    accuracy_label = "token accuracy"
    sql_suffix = "_tokens"
    key_parts = {"task": "tokens"}
    model_task = "tokens"
    supports = frozenset({"review"})
    data_checks = False  # a token's copies are the same word elsewhere: no near duplicates or outliers of rows
    extra_views = ("sentences", "token_confusions")

    def groups(self, examples: pa.Table) -> np.ndarray:
        return examples[SENTENCE_ID].to_numpy(zero_copy_only=False)

    def default_model(self, modality: str) -> str:
        return "crf"

    def check_folds(self, labels: np.ndarray, class_names: list[str], n_folds: int) -> None:
        if len(labels) == 0:
            raise InputError("the dataset is empty: there are no tokens to audit", "check the source path, the split and the token column")
        if len(np.unique(labels)) < 2:
            raise InputError(f"every token carries the tag {class_names[int(labels[0])]!r}; errors cannot be found without two tags", "check the tag column")

    def check_audit(self, detector: str, judges: bool) -> None:
        if judges:
            raise InputError("LLM judges read whole texts, and this dataset's rows are tokens", "leave --judges out")
        if detector != "confident_learning":
            raise InputError(f"detector {detector!r} reads each row's own features, and a token's are its sentence's", "leave --detector out")

    legend = (
        "A tag a token: each token is a row, its label score the model's probability of its given tag (self-confidence); "
        "a sentence's score is its lowest token's (the catalog's sentences view). The suggested tag is the model's most likely one."
    )

    def figures(self, version: Any, rows: pa.Table, class_names: list[str]) -> list[str]:
        """The most common tag errors: a word given one tag where labelq suggests another, among the flagged tokens."""
        flagged = rows.filter(rows[S.IS_LABEL_ISSUE])
        if flagged.num_rows == 0:
            return []
        words = version.payload_rows(flagged[S.ID].to_pylist())  # the tokens are inputs: kept apart from the rows
        keys = pa.table({"w": pc.utf8_lower(words[TOKEN]), "g": flagged[S.LABEL], "s": flagged[S.SUGGESTED_LABEL]})
        counts = keys.group_by(["w", "g", "s"]).aggregate([("w", "count")]).sort_by([("w_count", "descending"), ("w", "ascending")]).slice(0, TOP_CONFUSIONS)
        names = [f"{r['w']}: {class_names[r['g']]} -> {class_names[r['s']]}" for r in counts.to_pylist()]
        return [plots.top_counts(names, counts["w_count"].to_pylist(), "Most common tag errors (flagged tokens)", "flagged tokens")]

    def preview(self, version: Any, rows: pa.Table) -> list[str]:
        """Each token in its sentence, the token marked."""
        ids = rows[S.ID].to_pylist()
        where = pc.index_in(version.read(columns=[S.ID])[S.ID], value_set=pa.array(ids, pa.string()))
        position = {ids[int(k)]: int(p) for p, k in enumerate(where.to_pylist()) if k is not None}
        return [_sentence_html(*found) for found in _sentences(version, ids, [position[i] for i in ids])]

    def review_context(self, version: Any, position: int, row: dict) -> dict:
        ((tokens, at),) = _sentences(version, [row[S.ID]], [position])
        return {"sentence": tokens, "at": at}

    def export_keep(self, rows: pa.Table, keep: np.ndarray) -> np.ndarray:
        """A sentence is kept whole or dropped whole: dropping one token would leave its neighbours without their context."""
        sid = rows[SENTENCE_ID].combine_chunks()
        dropped = pc.unique(sid.filter(pa.array(~keep)))
        return ~pc.is_in(sid, value_set=dropped).to_numpy(zero_copy_only=False)

    def export_table(self, table: pa.Table, info: Any) -> tuple[pa.Table, Any]:
        """A sentence a row again: ``id`` the sentence, ``tokens``, the tag lists (``label``, ``original_label``), a list of
        every other column whose value varies within a sentence (provenance, another tag set), and the sentence's value of
        the rest (``split``)."""
        sid = table[SENTENCE_ID].combine_chunks()
        order = pc.sort_indices(pa.table({"s": sid, "p": table[POSITION]}), sort_keys=[("s", "ascending"), ("p", "ascending")])
        table = table.take(order)
        sid = table[SENTENCE_ID].combine_chunks()
        first = np.flatnonzero(np.r_[True, pc.not_equal(sid[1:], sid[:-1]).to_numpy(zero_copy_only=False)]) if len(sid) else np.empty(0, np.int64)
        offsets = pa.array(np.r_[first, len(sid)].astype(np.int32))
        out = {"id": sid.take(pa.array(first)), "tokens": pa.ListArray.from_arrays(offsets, table[TOKEN].combine_chunks())}
        spread = pa.array(np.repeat(first, np.diff(np.r_[first, len(sid)])))  # each row's sentence's first row
        for name in table.column_names:
            if name in (S.ID, SENTENCE_ID, POSITION, TOKEN):
                continue
            col = table[name].combine_chunks()
            head = col.take(spread)
            same = pc.or_(pc.fill_null(pc.equal(col, head), False), pc.and_(col.is_null(), head.is_null())) if not S.is_list_type(col.type) else None
            constant = same is not None and pc.all(same).as_py() is not False and name not in (S.LABEL, S.ORIGINAL_LABEL)
            out[name] = col.take(pa.array(first)) if constant else pa.ListArray.from_arrays(offsets, col)  # a value a sentence, or a token
        return pa.table(out), dataclasses.replace(info, modality="text", inputs=["tokens"])


def _sentences(version: Any, row_ids: list[str], positions: list[int]) -> list[tuple[list[str], int]]:
    """For each row ``row_ids[i]`` (``<sentence>:<place in it>``) at ``positions[i]`` in the version: its sentence's
    tokens and its place in them. The rows around all of them are read in one pass (``Version.rows_at``)."""
    n = version.num_rows
    places = [int(i.rpartition(":")[2]) for i in row_ids]
    spans = [(max(0, p - at), min(max(0, p - at) + CONTEXT, n)) for p, at in zip(positions, places)]
    wanted = np.unique(np.concatenate([np.arange(a, b) for a, b in spans])) if spans else np.empty(0, np.int64)
    near = version.rows_at(wanted.tolist(), columns=[SENTENCE_ID, TOKEN])
    sid, tokens = np.asarray(near[SENTENCE_ID].to_pylist(), dtype=object), near[TOKEN].to_pylist()
    out = []
    for row_id, (a, b), at in zip(row_ids, spans, places):
        lo, hi = np.searchsorted(wanted, a), np.searchsorted(wanted, b)
        mine = lo + np.flatnonzero(sid[lo:hi] == row_id.rpartition(":")[0])
        out.append(([tokens[k] for k in mine], at))
    return out


def _sentence_html(tokens: list[str], at: int) -> str:
    return " ".join(f"<mark><b>{html.escape(t)}</b></mark>" if i == at else html.escape(t) for i, t in enumerate(tokens))


register(TokenTags())
