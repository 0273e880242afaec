"""``tags``: a list of tag indices a row, multi-label (``labelq.labelkind``).

Labels are stored as sorted ``list<int64>`` (Hugging Face ``Sequence(ClassLabel)``) and held in numpy as
an ``(N, K)`` bool matrix (``labelq.multilabel``); pred_probs hold one probability per tag. Folds are
stratified by each row's rarest tag and models trained one-vs-rest; confident learning runs per tag
(cleanlab's multi-label filter, ``labelq.detect.multilabel``), a flagged tag is missing or extra, an
auto-fix or a re-label turns over the tags the model is sure of, and the benchmark scores exact sets,
tag accuracy and F1. LLM judges and the other detectors vote on one label a row, and are refused.
"""

from __future__ import annotations

import html
import warnings
from typing import Any

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..benchmark.metrics import TAG_METRICS, CorrectedLabels, tag_scores
from ..decide import decide_tags
from ..detect import DetectContext, Detection
from ..detect.multilabel import detect_tags
from ..detect.streaming_cl import whole
from ..errors import InputError
from ..labelkind import LabelKind, register
from ..multilabel import TAGS_TYPE, effective_tags, tag_lists, tag_matrix
from ..predict.crossval import one_vs_rest
from ..predict.models import MODELS
from ..reliability import check_tag_signal
from ..report import plots
from ..report.audit import percent

SINGLE_LABEL_MODELS = {"cnn"}  # models that learn one class a row
DEFAULT_MODEL = {"image": "logreg", "text": "tfidf-logreg", "tabular": "hgb"}  # one binary model per tag


def rarest_tag(tags: np.ndarray) -> np.ndarray:
    """``(N,)``: each row's rarest tag (K for a row without tags), the stratum that spreads every tag's rows
    over the folds (a multi-label dataset's stratified partition, as ``make_folds`` deals it)."""
    counts = tags.sum(axis=0)
    rank = np.where(tags, counts[None, :], np.iinfo(np.int64).max)
    return np.where(tags.any(axis=1), rank.argmin(axis=1), tags.shape[1])


class TagSets(LabelKind):
    name = "tags"
    supports = frozenset({"review"})
    lists = True
    sum_to_one = False
    what = "tags (multi-label)"
    accuracy_name = "tag accuracy"
    sql_suffix = "_multilabel"
    benchmark_metric = "exact-set accuracy"
    sql_label_name = "array_to_string(list_transform(label, lambda t: names[t + 1]), ', ')"
    key_parts = {"multi_label": True}  # the fold cache's keys of tag datasets, as they always were

    def labels(self, table: pa.Table, check: bool = False) -> np.ndarray:
        return tag_matrix(table[S.LABEL], len(S.info_of(table).class_names))  # tag_matrix refuses tags outside 0..K-1

    def effective(self, table: pa.Table) -> np.ndarray:
        return effective_tags(self.labels(table), table[S.CORRECTED_LABEL])

    def to_arrow(self, labels: np.ndarray) -> pa.Array:
        return tag_lists(labels)

    def decision_columns(self, decision: Any) -> tuple[pa.Array, pa.Array]:
        return tag_lists(decision.suggested_label), tag_lists(decision.corrected_label > 0, decision.corrected_rows)

    def differ(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a != b).any(axis=1)

    def codes(self, table: pa.Table) -> np.ndarray:
        packed = np.packbits(self.labels(table), axis=1)
        return np.unique(packed, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)

    def namer(self, class_names: list[str], sep: str = ", "):
        return lambda v: None if v is None else sep.join(class_names[t] for t in v)

    def strata(self, labels: np.ndarray) -> np.ndarray:
        return rarest_tag(labels)

    def default_model(self, modality: str) -> str:
        return DEFAULT_MODEL[modality]

    def check_model(self, name: str, modality: str) -> None:
        if name in SINGLE_LABEL_MODELS:
            raise InputError(
                f"model {name!r} learns one class a row, and this dataset's rows carry several tags",
                f"use a model trained one-vs-rest: {[n for n, e in MODELS.items() if modality in e.modalities and n not in SINGLE_LABEL_MODELS]}",
            )

    def fit_predict(self, model: Any, X_train: Any, y_train: np.ndarray, X_test: Any, n_classes: int) -> np.ndarray:
        """One binary copy of the model a tag (one-vs-rest); each tag's probability."""
        model = one_vs_rest(model)
        with warnings.catch_warnings():  # a tag on no (or every) training row: its probability is that constant
            warnings.filterwarnings("ignore", message="Label not .* is present in all training examples")
            model.fit(X_train, np.asarray(y_train).astype(np.uint8))
        return np.asarray(model.predict_proba(X_test), dtype=np.float32)

    def accuracy(self, labels: np.ndarray, probs: Any) -> float:
        return float(((whole(probs) >= 0.5) == labels).mean())

    def check_audit(self, detector: str, judges: bool) -> None:
        if judges:
            raise InputError("LLM judges vote on one label a row, and this dataset's rows carry several tags", "leave --judges out")
        if detector != "confident_learning":
            raise InputError(f"detector {detector!r} flags one label a row; this dataset's rows carry several tags", "leave --detector out")

    def detect(self, options: Any, ctx: DetectContext, client: Any = None) -> Detection:
        return detect_tags(ctx.labels, whole(ctx.pred_probs), options.filter_by)

    def check_signal(self, labels: np.ndarray, probs: Any) -> dict:
        return check_tag_signal(labels, whole(probs))

    def decide(
        self, detection: Detection, probs: Any, auto_fix: Any, votes: pa.Table | None, judging: Any, ids: pa.ChunkedArray, planted: pa.Table | None = None
    ):
        return decide_tags(detection, whole(probs), auto_fix), [detection], {}

    legend = (
        "Multi-label: each tag is its own yes/no question. Low label scores mean some of a row's tags are likely wrong; a missing tag is one "
        "the model is confident the row has, an extra tag one it is confident the row lacks; the suggested tags are the given ones with those turned over."
    )
    accuracy_label = "tag accuracy (rows x tags)"
    prior_label = "each tag's more common value's share"
    issue_columns = S.MULTI_LABEL_COLUMNS

    def per_class_extra(self, rows: pa.Table, n_classes: int) -> list[dict]:
        """Per tag: rows flagged missing it, and holding it wrongly."""
        missing, extra = (tag_matrix(rows[c], n_classes).sum(axis=0) for c in (S.MISSING_TAGS, S.EXTRA_TAGS))
        return [{"missing": int(missing[i]), "extra": int(extra[i])} for i in range(n_classes)]

    def rates_figure(self, class_names: list[str], per_class: list[dict], n_rows: int) -> str:
        """Per tag: rows flagged missing it among those without it, holding it wrongly among those with it."""
        missing = np.array([p["missing"] / max(n_rows - p["rows"], 1) for p in per_class])
        extra = np.array([p["extra"] / max(p["rows"], 1) for p in per_class])
        labels = ("flagged missing it (% of rows without it)", "flagged holding it wrongly (% of rows with it)")
        return plots.class_rates(class_names, missing, extra, labels, "% of rows", "Tags in doubt", "tags")

    def class_table(self, per_class: list[dict], health: dict | None) -> tuple[str, str, str]:
        e = html.escape
        head = "<th>tag</th><th>rows with it</th><th>flagged rows with it</th><th>flagged %</th><th>flagged missing it</th><th>flagged holding it wrongly</th>"
        rows = "".join(
            f"<tr><td>{e(p['class_name'])}</td><td>{p['rows']:,}</td><td>{p['flagged']:,}</td><td>{percent(p['flagged_rate'])}</td>"
            f"<td>{p['missing']:,}</td><td>{p['extra']:,}</td></tr>"
            for p in per_class
        )
        return "Per tag", head, rows

    benchmark_title = "exact-set accuracy, tag accuracy and F1"
    benchmark_heads = {
        "original": "exact set, original tags",
        "corrected": "exact set, corrected tags",
        "hamming_original": "tag accuracy, original",
        "hamming_corrected": "tag accuracy, corrected",
        "f1_original": "F1, original",
        "f1_corrected": "F1, corrected",
        "mislabeled_subset": "exact set, originally mislabeled rows",
        "correct_subset": "exact set, correctly labeled rows",
    }

    def corrected_labels(self, rows: pa.Table) -> CorrectedLabels:
        given = self.labels(rows)
        return CorrectedLabels(given, effective_tags(given, rows[S.CORRECTED_LABEL]), None, self)

    def read_predicted(self, table: pa.Table, class_names: list[str]) -> np.ndarray:
        """``(rows, K)`` bool predicted tags: ``predicted_label`` lists of tag indices or names, or ``pred_probs``
        (a probability per tag) at 0.5."""
        k = len(class_names)
        if "predicted_label" in table.column_names:
            raw = table["predicted_label"].combine_chunks()
            if not (pa.types.is_list(raw.type) or pa.types.is_large_list(raw.type)):
                raise InputError("the test set's rows carry tags, but predicted_label holds one value a row", "give each row a list of predicted tags")
            raw = raw.fill_null(pa.scalar([], raw.type))
            values = raw.flatten()
            if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
                names = {c: j for j, c in enumerate(class_names)}
                bad = sorted({v for v in values.to_pylist() if v not in names})
                if bad:
                    raise InputError(f"predicted tags {bad[:5]} are not tags of the test set", f"use tag indices 0..{k - 1} or the names {class_names[:10]}")
                raw = pa.ListArray.from_arrays(raw.offsets, pa.array([names[v] for v in values.to_pylist()], pa.int64()))
            try:
                return tag_matrix(raw.cast(TAGS_TYPE), k)
            except InputError as exc:
                raise InputError(f"predicted tags must be tag indices 0..{k - 1}", "fix the predictions, or give tag names") from exc
        probs = np.array(table["pred_probs"].to_pylist(), dtype=np.float64)
        if probs.ndim != 2 or probs.shape[1] != k:
            raise InputError(f"pred_probs must have {k} entries per row (one per tag), got shape {probs.shape}")
        return probs >= 0.5

    def scores(self, pred: np.ndarray, labels: CorrectedLabels) -> dict[str, np.ndarray]:
        """Exact-set accuracy (the whole predicted set right), then each labeling's tag accuracy and F1 (``tag_scores``)."""
        out = {"original": (pred == labels.given).all(axis=1), "corrected": (pred == labels.corrected).all(axis=1)}
        for labeling, tags in (("original", labels.given), ("corrected", labels.corrected)):
            out.update({f"{metric}_{labeling}": per_row for metric, per_row in tag_scores(pred, tags).items()})
        return out

    def benchmark_columns(self, label_sets: bool) -> list[str]:
        return ["original", "corrected", *(f"{m}_{lab}" for m in TAG_METRICS for lab in ("original", "corrected")), "mislabeled_subset", "correct_subset"]

    def relabel(self, cfg: Any, parent: Any, rows: pa.Table, probs: np.ndarray) -> tuple[pa.Table, dict]:
        from ..relabel.run import relabel_tags

        return relabel_tags(cfg, parent, rows, probs)

    def review_names(self, row: dict, class_names: list[str]) -> tuple[list[str], list[str]]:
        """The given tags, and the suggestion: the corrected set where there is one, else the given tags with
        the tags flagged missing added and those flagged extra removed."""
        given = sorted(row[S.LABEL] or [])
        if row.get(S.CORRECTED_LABEL) is not None:
            suggested = sorted(row[S.CORRECTED_LABEL])
        else:
            suggested = sorted((set(given) | set(row.get(S.MISSING_TAGS) or [])) - set(row.get(S.EXTRA_TAGS) or []))
        return [class_names[t] for t in given], [class_names[t] for t in suggested]

    def apply_reviews(self, rows: pa.Table, answers: dict[int, list[int]], probs: np.ndarray) -> tuple[dict[str, list], int]:
        """A reviewed row's tags are the reviewer's set (``[]``: no tag applies): ``corrected_label`` where it
        differs from the given tags, ``issue_kind`` ``ok`` or ``wrong_label``, ``soft_label`` 1 on its tags."""
        k = probs.shape[1]
        kind, corrected, labels, soft = S.pylists(rows, S.ISSUE_KIND, S.CORRECTED_LABEL, S.LABELS, S.SOFT_LABEL)
        given = rows[S.LABEL].to_pylist()
        changed = 0
        for i, chosen in answers.items():
            before = sorted(corrected[i] if corrected[i] is not None else given[i])
            same = sorted(chosen) == sorted(given[i])
            corrected[i] = None if same else sorted(chosen)
            kind[i] = "ok" if same else "wrong_label"
            changed += int(sorted(chosen) != before)
            labels[i] = sorted(chosen)
            vec = np.zeros(k, np.float32)
            vec[list(chosen)] = 1.0
            soft[i] = vec.tolist()
        return {S.ISSUE_KIND: kind, S.CORRECTED_LABEL: corrected, S.LABELS: labels, S.SOFT_LABEL: soft}, changed

    def review_units(self, rows: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """One unit a flagged tag (missing or extra) of a flagged row: the (row, tag) flip a rule certifies."""
        k = len(S.info_of(rows).class_names)
        flagged = rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)
        doubt = (tag_matrix(rows[S.MISSING_TAGS], k) | tag_matrix(rows[S.EXTRA_TAGS], k)) & flagged[:, None]
        pos, tag = np.nonzero(doubt)
        return pos, tag


register(TagSets())
