"""Kinds of label as registered strategies: what a row's ``label`` is, and everything that depends on it.

A ``LabelKind`` is chosen once, from the examples' metadata (``ExamplesInfo.kind_name``, the manifest's
``Manifest.kind_name``), and every layer asks it rather than branching: how labels are read and
validated, how folds are stratified and models fitted, which detectors apply and how they decide,
what a row's effective label is, how re-labeling and export treat it, which SQL files its views use,
and how the report and the benchmark show it. Three kinds are built in:

- ``single`` (``labelq.label_kinds.single``): one class index a row;
- ``tags`` (``labelq.label_kinds.tags``): a list of tag indices a row (multi-label), stored as
  ``list<int64>`` and held in numpy as an ``(N, K)`` bool matrix;
- ``regression`` (``labelq.label_kinds.regression``): a number a row (float64), its pred_probs the
  out-of-sample prediction (one column).

Adding a kind means one module with a ``LabelKind`` subclass and a ``register(MyKind())`` call; a
dataset is given it at ingest with ``--task NAME`` (``IngestOptions.label_kind``). The kinds
sit at the top of the layers (they call the detectors, the decision, re-labeling and the report), and
the layers below reach them only through this interface and the registry, which imports a built-in
kind's module when it is first asked for (as entry points are loaded), never at import time.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar
from xml.sax.saxutils import quoteattr

import numpy as np
import pyarrow as pa

from . import schema as S
from .errors import InputError
from .schema import info_of
from .validation import check_classes_for_folds

NONE_OF_THESE = "None of these"  # a reviewer's answer that no class fits
BUILTIN = {
    "single": "labelq.label_kinds.single:SingleLabel",
    "tags": "labelq.label_kinds.tags:TagSets",
    "regression": "labelq.label_kinds.regression:Regression",
    "tokens": "labelq.label_kinds.tokens:TokenTags",
}
KINDS: dict[str, LabelKind] = {}


class LabelKind:
    """The interface every kind implements; the class attributes are its facts.

    ``lists``: a row's label is a list of indices (``list<int64>``; ``ExamplesInfo.multi_label`` records
    it, so readers of the files know the column's type). ``sum_to_one``: its pred_probs rows are one
    distribution over the classes (else one probability per class, each in [0, 1]; not ``bounded``: predicted
    values, any finite numbers). ``what``: the label
    values' name for people (``classes``). ``sql_suffix``: views and queries with a ``<name><suffix>.sql``
    file use it. ``key_parts``: added to the fold cache's key (a kind that fits other models must not
    reuse another kind's folds).
    """

    name: ClassVar[str]
    lists: ClassVar[bool] = False
    sum_to_one: ClassVar[bool] = True
    bounded: ClassVar[bool] = True  # its pred_probs are probabilities (else predicted values, any finite numbers)
    what: ClassVar[str] = "classes"
    accuracy_name: ClassVar[str] = "accuracy"
    sql_suffix: ClassVar[str] = ""
    sql_label_name: ClassVar[str] = "names[label + 1]"  # the catalog's macro label_name(names, label): a label's name in SQL
    key_parts: ClassVar[dict[str, Any]] = {}
    supports: ClassVar[frozenset[str]] = frozenset()  # jobs beyond the audit that take it: "review", "label_maps"
    model_task: ClassVar[str] = "classes"  # the registered models it trains (``labelq.predict.models``: classes or regression)

    def __repr__(self) -> str:
        return f"<label kind {self.name!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelKind) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __reduce__(self):  # a kind crosses processes (Dask, Prefect) by name: the worker's registry gives it back
        return kind_named, (self.name,)

    # what the rows carry
    def labels(self, table: pa.Table, check: bool = False) -> np.ndarray:
        """The given labels as the detectors take them (``check``: refuse values outside the classes)."""
        raise NotImplementedError

    def effective(self, table: pa.Table) -> np.ndarray:
        """The labels after corrections: ``corrected_label`` where a row has one, else ``label``."""
        raise NotImplementedError

    def to_arrow(self, labels: np.ndarray) -> pa.Array:
        """Labels in the ``labels`` form back to the ``label`` column's Arrow type."""
        raise NotImplementedError

    def decision_columns(self, decision: Any) -> tuple[pa.Array, pa.Array]:
        """The published ``suggested_label`` and ``corrected_label`` columns of a ``labelq.decide.Decision``."""
        return pa.array(decision.suggested_label, pa.int64()), pa.array(decision.corrected_label, pa.int64(), mask=decision.corrected_label < 0)

    def differ(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``(N,)`` bool: rows whose labels differ."""
        raise NotImplementedError

    def codes(self, table: pa.Table) -> np.ndarray:
        """``(N,)`` int64, equal where two rows carry the same label."""
        raise NotImplementedError

    def class_codes(self, labels: np.ndarray) -> np.ndarray:
        """What per-class counts take (``labelq.multilabel.class_counts``): the labels, or for a kind without classes
        one group index a row."""
        return labels

    def namer(self, class_names: list[str], sep: str = ", "):
        """``name(label)``: a label's name for people (None stays None)."""
        raise NotImplementedError

    # predictions
    def strata(self, labels: np.ndarray) -> np.ndarray:
        """``(N,)`` ints the folds are stratified by."""
        raise NotImplementedError

    def groups(self, examples: pa.Table) -> np.ndarray | None:
        """``(N,)``: rows that must share a fold (a sentence's tokens), or None (each row on its own, folds stratified)."""
        return None

    def default_model(self, modality: str) -> str:
        raise NotImplementedError

    def check_model(self, name: str, modality: str) -> None:
        """Refuse a model that cannot learn this kind of label."""

    def fit_predict(self, model: Any, X_train: Any, y_train: np.ndarray, X_test: Any, n_classes: int) -> np.ndarray:
        """Fit ``model`` and return its ``(rows, K)`` float32 probabilities on ``X_test``."""
        raise NotImplementedError

    def accuracy(self, labels: np.ndarray, probs: np.ndarray) -> float:
        """Out-of-sample accuracy against the given labels (``accuracy_name``)."""
        raise NotImplementedError

    def check_folds(self, labels: np.ndarray, class_names: list[str], n_folds: int) -> None:
        """Refuse labels that ``n_folds``-fold cross-validation cannot learn from (too few rows of a class)."""
        check_classes_for_folds(labels, class_names, n_folds)

    def probs_problem(self, probs: np.ndarray) -> str | None:
        """What is wrong with pred_probs of this kind beyond NaN and infinities, or None."""
        if (probs < 0).any():
            return "holds negative probabilities"
        if self.sum_to_one:
            return "holds rows that do not sum to 1" if len(probs) and np.abs(probs.sum(axis=1, dtype=np.float64) - 1).max() > 1e-3 else None
        return "holds probabilities above 1" if (probs > 1).any() else None

    # the audit
    def check_audit(self, detector: str, judges: bool) -> None:
        """Refuse an audit setting this kind cannot take (a detector, judges)."""

    def detect(self, options: Any, ctx: Any, client: Any = None) -> Any:
        """The ``Detection`` of the audit's detector on a ``labelq.detect.DetectContext`` (labels, pred_probs, features)."""
        raise NotImplementedError

    def check_signal(self, labels: np.ndarray, probs: Any) -> dict:
        """Whether the model beats a model that learned nothing (``labelq.reliability``)."""
        raise NotImplementedError

    def estimate_issues(self, labels: np.ndarray, probs: Any) -> int | None:
        """How many labels are wrong, estimated from the pred_probs alone (for the history), or None."""
        return None

    def decide(
        self, detection: Any, probs: Any, auto_fix: Any, votes: pa.Table | None, judging: Any, ids: pa.ChunkedArray, planted: pa.Table | None = None
    ) -> tuple[Any, list, dict]:
        """``(Decision, detections, judge info)``; ``planted``: the judges' votes on planted wrong labels, where they ran."""
        raise NotImplementedError

    def class_health(self, labels: np.ndarray, joint: np.ndarray | None, class_names: list[str]) -> dict | None:
        """The report's class health, or None where it does not apply."""
        return None

    # re-labeling and export
    def relabel(self, cfg: Any, parent: Any, rows: pa.Table, probs: np.ndarray) -> tuple[pa.Table, dict]:
        """The re-labeling rule (``labelq.relabel.run.relabel_step``)."""
        raise NotImplementedError

    # review (``labelq.relabel.review`` and the app): what a person sees and what an answer does
    def review_names(self, row: dict, class_names: list[str]) -> tuple[list[str], list[str]]:
        """``(the given label's names, labelq's suggestion's names)`` of a row (a dict of its columns)."""
        raise NotImplementedError

    answer: ClassVar[str] = "classes"  # what a reviewer answers: "classes" (one or several class names) or "value" (a number)

    def parse_answer(self, choices: list[str], class_names: list[str]) -> tuple[list, str | None]:
        """A reviewer's answer as the kind takes it (class names -> class indices; ``NONE_OF_THESE`` alone: ``[]``),
        and what is wrong with it (None when nothing is)."""
        index = {c: i for i, c in enumerate(class_names)}
        bad = [c for c in choices if c not in index and c != NONE_OF_THESE]
        if bad:
            return [], f"labels {bad} are not classes"
        if NONE_OF_THESE in choices and len(choices) > 1:
            return [], f"{NONE_OF_THESE!r} together with classes"
        return sorted({index[c] for c in choices if c != NONE_OF_THESE}), None

    def answer_hint(self, class_names: list[str]) -> str:
        """What an answer must be, for people (an error's fix)."""
        return f"classes: {[*class_names, NONE_OF_THESE]} (the app: an empty list for {NONE_OF_THESE!r})"

    def spelled(self, labels: list[str], answer: list) -> list[str]:
        """How the review log records an answer (``labels`` as given, ``answer`` as ``parse_answer`` read them): one
        spelling for one answer, so reviewers who gave the same answer agree."""
        return labels

    def review_control(self, class_names: list[str]) -> str:
        """Label Studio's control for the answer (``labelq.relabel.review.label_config``)."""
        choices = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in [*class_names, NONE_OF_THESE])
        return f'<Choices name="label" toName="item" choice="multiple" showInLine="true">\n{choices}\n  </Choices>'

    def review_prediction(self, suggested: list[str]) -> dict:
        """labelq's suggestion as a Label Studio pre-annotation's result."""
        return {"from_name": "label", "to_name": "item", "type": "choices", "value": {"choices": suggested}}

    def review_facts(self, version: Any) -> dict:
        """What the review app shows about the whole ``version`` beside each row (``{name: value}``)."""
        return {}

    def apply_reviews(self, rows: pa.Table, answers: dict[int, list[int]], probs: np.ndarray) -> tuple[dict[str, list], int]:
        """What the answers do: ``answers`` maps a row's position to the reviewer's class indices (``[]``: none fits).
        Returns the new values of ``issue_kind``, ``corrected_label``, ``labels`` and ``soft_label`` (Python
        lists over all rows) and how many rows' effective labels changed."""
        raise NotImplementedError

    def review_units(self, rows: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """What a calibration sample draws from, uniformly: ``(row positions, keys)`` of the candidate corrections
        of the flagged rows, the unit a ``--target-precision`` rule certifies (one a row, key -1, by default)."""
        pos = np.flatnonzero(rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False))
        return pos, np.full(len(pos), -1)

    # the audit report (``labelq.report.audit``)
    legend: ClassVar[str] = ""  # how to read the report's scores and suggestions
    accuracy_label: ClassVar[str] = "accuracy"
    prior_label: ClassVar[str] = "majority class's share"  # what a model that learned nothing scores
    issue_columns: ClassVar[tuple[str, ...]] = ()  # columns of the top issues beyond the given and suggested labels
    estimate_by: ClassVar[str] = "confident learning"  # what estimates the number of wrong labels
    data_checks: ClassVar[bool] = True  # whether the near-duplicate and outlier checks apply to its rows
    extra_views: ClassVar[tuple[str, ...]] = ()  # the catalog's views of this kind beyond everyone's (``sql/<view>.sql``)
    filtered: ClassVar[bool] = True  # whether confident learning's --filter-by applies

    def label_fact(self, class_names: list[str]) -> tuple[str, Any]:
        """The report's summary line about the labels: ``(what, how many)``."""
        return self.what, len(class_names)

    def per_class_extra(self, rows: pa.Table, n_classes: int) -> list[dict]:
        """Per class, the report's figures beyond rows and flags (``{}`` each when none)."""
        return [{} for _ in range(n_classes)]

    def rates_figure(self, class_names: list[str], per_class: list[dict], n_rows: int) -> str:
        """The per-class rates figure (a data URI, ``labelq.report.plots``)."""
        raise NotImplementedError

    def preview(self, version: Any, rows: pa.Table) -> list[str] | None:
        """The report's cell (HTML) showing each of ``rows`` (the top issues), or None for the modality's own."""
        return None

    def review_context(self, version: Any, position: int, row: dict) -> dict:
        """What the review app shows around the row at ``position`` beyond its inputs (``{}``: nothing)."""
        return {}

    def export_keep(self, rows: pa.Table, keep: np.ndarray) -> np.ndarray:
        """Which rows a dropping export policy keeps, from the rows it would keep one by one (the same by default)."""
        return keep

    def export_table(self, table: pa.Table, info: Any) -> tuple[pa.Table, Any]:
        """The rows ``labelq export`` writes and their ``ExamplesInfo``, from the policy's rows (the same by default)."""
        return table, info

    def figures(self, version: Any, rows: pa.Table, class_names: list[str]) -> list[str]:
        """The report's figures of this kind beyond the rates, the scores and the noise (data URIs), from the published
        ``rows`` (without the inputs) of ``version``."""
        return []

    def class_table(self, per_class: list[dict], health: dict | None) -> tuple[str, str, str]:
        """``(title, header cells, rows)`` of the report's per-class table, as HTML."""
        raise NotImplementedError

    # the benchmark report (``labelq.benchmark``)
    benchmark_title: ClassVar[str] = "accuracy"
    benchmark_heads: ClassVar[dict[str, str]] = {}

    benchmark_metric: ClassVar[str] = "accuracy"  # what the ``original`` and ``corrected`` figures are, for the figures' axes
    mixable: ClassVar[bool] = True  # the subsets' figures mix linearly with the share of mislabeled rows (the prevalence curve)

    def aggregate(self, name: str, values: np.ndarray, boots: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float, float]:
        """A figure ``name`` from its per-row ``values`` (over ``mask``) and its 95% bootstrap interval over ``boots``: the mean."""
        return mean_ci(values, boots, mask)

    def corrected_labels(self, rows: pa.Table) -> Any:
        """The test set's ``CorrectedLabels`` (``labelq.benchmark.metrics``)."""
        raise NotImplementedError

    def read_predicted(self, table: pa.Table, class_names: list[str]) -> np.ndarray:
        """Each prediction row's predicted label, from ``predicted_label`` or ``pred_probs`` (``labelq.benchmark.report.read_predictions``)."""
        raise NotImplementedError

    def scores(self, pred: np.ndarray, labels: Any) -> dict[str, np.ndarray]:
        """Per-row 0/1 (or graded) scores of predictions under each labeling: ``original``, ``corrected``, and more."""
        raise NotImplementedError

    def benchmark_columns(self, label_sets: bool) -> list[str]:
        """The benchmark's figures per model, in order (keys of ``benchmark_heads``)."""
        raise NotImplementedError


def mean_ci(x: np.ndarray, boots: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float, float]:
    """Mean of ``x`` (over ``mask``) and its 95% percentile bootstrap interval."""
    x = x.astype(np.float64)
    if mask is None:
        est = float(x.mean())
        dist = x[boots].mean(axis=1)
    else:
        if not mask.any():
            return float("nan"), float("nan"), float("nan")
        est = float(x[mask].mean())
        m = mask[boots]
        dist = (x[boots] * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1)
        dist = dist[m.sum(axis=1) > 0]
    lo, hi = np.percentile(dist, [2.5, 97.5])
    return est, float(lo), float(hi)


def register(kind: LabelKind) -> LabelKind:
    """Make ``kind`` available by its name (a later registration of the name replaces it)."""
    if not getattr(kind, "name", None):
        raise ValueError("a label kind needs a name")
    KINDS[kind.name] = kind
    return kind


def kind_named(name: str) -> LabelKind:
    """The registered kind ``name`` (a built-in one is imported on first use)."""
    if name not in KINDS and name in BUILTIN:
        module, cls = BUILTIN[name].split(":")
        register(getattr(importlib.import_module(module), cls)())
    if name not in KINDS:
        raise InputError(f"unknown label kind {name!r}", f"use one of {sorted(set(BUILTIN) | set(KINDS))}, or register yours (labelq.labelkind.register)")
    return KINDS[name]


def check_supports(version: Any, job: str, what: str) -> None:
    """Refuse ``version`` to ``job`` (``what`` it is, for people) when its kind of label does not support it."""
    kind = kind_of(version.manifest())
    if job not in kind.supports:
        raise InputError(
            f"{what} works on one class a row, and {version.name} {version.tag} carries {kind.what} (label kind {kind.name!r})",
            "re-label it with `labelq relabel`; check its corrections in the report or with `labelq issues`",
        )


def kind_of(info: Any) -> LabelKind:
    """The kind of an ``ExamplesInfo`` or a ``Manifest`` (``kind_name``), or of an examples table."""
    if isinstance(info, pa.Table):
        info = info_of(info)
    return kind_named(info.kind_name)
