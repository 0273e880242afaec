"""``single``: one class index a row, the kind of most datasets (``labelq.labelkind``).

Labels are ``(N,)`` int64 class indices; pred_probs rows are distributions over the classes. Folds are
stratified by class; the audit runs the registered detector (confident learning by default, by chunks
where it can), may combine it with LLM judges, and the decision, re-labeling (issue kinds, label sets,
soft labels, a precision guarantee) and the benchmark's accuracies are those of one class a row.
"""

from __future__ import annotations

import html
import logging
from typing import Any

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..benchmark.metrics import CorrectedLabels
from ..decide import decide
from ..detect import ConfidentLearning, DetectContext, Detection, run_detector
from ..detect.class_health import class_health
from ..detect.streaming_cl import argmax_of, count, row_ranges
from ..errors import InputError
from ..labelkind import LabelKind, register
from ..predict import GivenProbs
from ..reliability import check_signal
from ..report import plots
from ..report.audit import percent
from ..validation import check_labels

log = logging.getLogger(__name__)


class SingleLabel(LabelKind):
    name = "single"
    supports = frozenset({"review", "label_maps"})

    def labels(self, table: pa.Table, check: bool = False) -> np.ndarray:
        labels = table[S.LABEL].to_numpy()
        return check_labels(labels, S.info_of(table).class_names) if check else labels

    def effective(self, table: pa.Table) -> np.ndarray:
        return S.effective_labels(table)

    def to_arrow(self, labels: np.ndarray) -> pa.Array:
        return pa.array(labels, pa.int64())

    def differ(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a != b

    def codes(self, table: pa.Table) -> np.ndarray:
        return table[S.LABEL].to_numpy()

    def namer(self, class_names: list[str], sep: str = ", "):
        return lambda v: None if v is None else class_names[v]

    def strata(self, labels: np.ndarray) -> np.ndarray:
        return labels

    def default_model(self, modality: str) -> str:
        from ..predict.models import DEFAULT_MODEL

        return DEFAULT_MODEL[modality]

    def fit_predict(self, model: Any, X_train: Any, y_train: np.ndarray, X_test: Any, n_classes: int) -> np.ndarray:
        model.fit(X_train, y_train)
        raw = np.asarray(model.predict_proba(X_test), dtype=np.float64)
        probs = np.zeros((len(raw), n_classes), dtype=np.float32)
        probs[:, np.asarray(model.classes_, dtype=np.int64)] = raw  # keep columns aligned if the training rows lacked a class
        return probs

    def accuracy(self, labels: np.ndarray, probs: Any) -> float:
        return float((argmax_of(probs) == labels).mean())

    def detect(self, options: Any, ctx: DetectContext, client: Any = None) -> Detection:
        """The registered detector on what it needs of ``ctx`` (``labelq.detect.run_detector``). ``client``: a Dask
        client whose workers run confident learning's passes over a given ``.npy``."""
        probs, labels = ctx.pred_probs, ctx.labels
        if isinstance(probs, GivenProbs) and isinstance(options.impl, ConfidentLearning) and client is not None:
            from ..detect.dask_cl import dask_mapper

            workers = max(1, len(client.scheduler_info()["workers"]))
            parts = row_ranges(len(labels), 2 * workers)
            log.info("confident learning on %d Dask workers, over %d row ranges of %s", workers, len(parts), probs.path)
            return options.impl.detect(labels, probs, mapper=dask_mapper(client), parts=parts)
        return run_detector(options.impl, ctx)

    def check_signal(self, labels: np.ndarray, probs: Any) -> dict:
        return check_signal(labels, probs)

    def estimate_issues(self, labels: np.ndarray, probs: Any) -> int | None:
        return count(labels, probs).num_label_issues()  # confident learning's count

    def decide(
        self, detection: Detection, probs: Any, auto_fix: Any, votes: pa.Table | None, judging: Any, ids: pa.ChunkedArray, planted: pa.Table | None = None
    ):
        """Confident learning alone, or combined with the judges' votes on the rows they saw (``planted``: their votes on
        planted wrong labels, for the ``calibrated`` aggregation)."""
        if votes is None or votes.num_rows == 0:
            return decide([detection], probs, auto_fix), [detection], {}
        from ..judges.ensemble import combine_judges, judge_evidence

        ev = judge_evidence(votes, ids.to_pylist(), probs.shape[1])
        weights = {j.name: j.weight for j in judging.configs or []}
        p_wrong, info = combine_judges(ev, planted, detection, judging.judge_aggregation, weights)
        score, flag = detection.score.copy(), detection.is_issue.copy()
        score[ev.rows], flag[ev.rows] = 1.0 - p_wrong, p_wrong > 0.5
        ensemble = Detection("ensemble", score, flag, detection.suggested_label.copy(), info)
        judges_detection = Detection("llm_judges", ev.p_correct, ev.p_correct < 0.5, detection.suggested_label.copy())
        decision = decide([ensemble], probs, auto_fix, ev.no_class)
        return decision, [detection, judges_detection, ensemble], {"judged_rows": len(ev.rows), **info}

    def class_health(self, labels: np.ndarray, joint: np.ndarray | None, class_names: list[str]) -> dict | None:
        return class_health(labels, joint, class_names)

    legend = "Low label scores mean the given label is likely wrong; the suggested label is the model's most likely class."

    def rates_figure(self, class_names: list[str], per_class: list[dict], n_rows: int) -> str:
        flagged = np.array([p["flagged_rate"] for p in per_class])
        return plots.class_rates(class_names, flagged, np.array([p["estimated_error_rate"] or 0 for p in per_class]))

    def class_table(self, per_class: list[dict], health: dict | None) -> tuple[str, str, str]:
        e, pct = html.escape, percent
        health = health or {"per_class": [{} for _ in per_class]}
        head = (
            "<th>class</th><th>rows</th><th>share</th><th>flagged</th><th>flagged %</th><th>estimated error rate</th><th>label quality</th>"
            "<th>estimated rows of it given another class</th>"
        )
        rows = "".join(
            f"<tr><td>{e(p['class_name'])}</td><td>{p['rows']:,}</td><td>{pct(h.get('share'))}{' <b>imbalanced</b>' if h.get('imbalanced') else ''}</td>"
            f"<td>{p['flagged']:,}</td><td>{pct(p['flagged_rate'])}</td><td>{pct(p['estimated_error_rate'])}</td>"
            f"<td>{'' if h.get('label_quality') is None else format(h['label_quality'], '.3f')}</td>"
            f"<td>{'' if h.get('inverse_label_issues') is None else format(h['inverse_label_issues'], ',')}</td></tr>"
            for p, h in zip(per_class, health["per_class"], strict=True)
        )
        return "Per class", head, rows

    benchmark_title = "accuracy"
    benchmark_heads = {
        "original": "original labels",
        "corrected": "corrected labels",
        "label_sets": "label sets (ReaL)",
        "mislabeled_subset": "originally mislabeled rows",
        "correct_subset": "correctly labeled rows",
    }

    def corrected_labels(self, rows: pa.Table) -> CorrectedLabels:
        """Given and corrected classes, and the label sets (a row without one: its corrected class) when the version has them."""
        given, corrected = rows[S.LABEL].to_numpy(), S.effective_labels(rows)
        sets = None
        if S.LABELS in rows.column_names:
            sets = np.zeros((rows.num_rows, len(S.info_of(rows).class_names)), bool)
            for i, members in enumerate(rows[S.LABELS].to_pylist()):
                sets[i, corrected[i] if members is None else members] = True
        return CorrectedLabels(given, corrected, sets, self)

    def read_predicted(self, table: pa.Table, class_names: list[str]) -> np.ndarray:
        """A class index or name a row (``predicted_label``), or the top class of ``pred_probs``."""
        k = len(class_names)
        if "predicted_label" in table.column_names:
            raw = table["predicted_label"]
            if pa.types.is_list(raw.type) or pa.types.is_large_list(raw.type):
                raise InputError("predicted_label holds lists (tags), but the test set has one class a row", "give one class index or name a row")
            if pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
                names = {c: j for j, c in enumerate(class_names)}
                bad = sorted({v for v in raw.to_pylist() if v not in names})
                if bad:
                    raise InputError(f"predicted labels {bad[:5]} are not classes", f"use class indices 0..{k - 1} or the names {class_names}")
                pred = np.array([names[v] for v in raw.to_pylist()])
            else:
                pred = raw.to_numpy(zero_copy_only=False)
                if np.isnan(pred.astype(float)).any() or ((pred < 0) | (pred >= k)).any() or (pred != np.round(pred)).any():
                    raise InputError(f"predicted labels must be class indices 0..{k - 1}", "fix the predictions, or give class names")
                pred = pred.astype(np.int64)
        else:
            probs = np.array(table["pred_probs"].to_pylist(), dtype=np.float64)
            if probs.ndim != 2 or probs.shape[1] != k:
                raise InputError(f"pred_probs must have {k} entries per row (one per class), got shape {probs.shape}")
            pred = probs.argmax(axis=1)
        return pred

    def scores(self, pred: np.ndarray, labels: CorrectedLabels) -> dict[str, np.ndarray]:
        out = {"original": pred == labels.given, "corrected": pred == labels.corrected}
        if labels.sets is not None:
            out["label_sets"] = labels.sets[np.arange(len(pred)), pred]
        return out

    def benchmark_columns(self, label_sets: bool) -> list[str]:
        return ["original", "corrected"] + (["label_sets"] if label_sets else []) + ["mislabeled_subset", "correct_subset"]

    def relabel(self, cfg: Any, parent: Any, rows: pa.Table, probs: np.ndarray) -> tuple[pa.Table, dict]:
        from ..relabel.run import relabel_classes

        return relabel_classes(cfg, parent, rows, probs)

    def review_names(self, row: dict, class_names: list[str]) -> tuple[list[str], list[str]]:
        from ..relabel.review import suggestion

        return [class_names[row[S.LABEL]]], suggestion(row, class_names)

    def apply_reviews(self, rows: pa.Table, answers: dict[int, list[int]], probs: np.ndarray) -> tuple[dict[str, list], int]:
        """``labels`` the reviewer's set; ``issue_kind`` from it (``labelq.kinds.review_kind``); ``corrected_label``
        the reviewed class when the given label is not in the set (of several, the one the model finds most
        probable); ``soft_label`` uniform over the set."""
        from ..kinds import review_kind

        k = probs.shape[1]
        kind, corrected, labels, soft = S.pylists(rows, S.ISSUE_KIND, S.CORRECTED_LABEL, S.LABELS, S.SOFT_LABEL)
        given = rows[S.LABEL].to_numpy()
        changed = 0
        for i, chosen in answers.items():
            before = corrected[i] if corrected[i] is not None else int(given[i])
            kind[i] = review_kind(chosen, int(given[i]))
            corrected[i] = None if not chosen or int(given[i]) in chosen else max(chosen, key=lambda c: probs[i, c])
            after = corrected[i] if corrected[i] is not None else int(given[i])
            changed += int(after != before)
            labels[i] = chosen
            if chosen:
                vec = np.zeros(k, np.float32)
                vec[chosen] = 1.0 / len(chosen)
                soft[i] = vec.tolist()
        return {S.ISSUE_KIND: kind, S.CORRECTED_LABEL: corrected, S.LABELS: labels, S.SOFT_LABEL: soft}, changed


register(SingleLabel())
