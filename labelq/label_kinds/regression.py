"""``regression``: a number a row (a regression target), the third built-in kind (``labelq.labelkind``).

The ``label`` column holds the given values (float64); the dataset's one "class" is the target, named
after its column, so the pred_probs contract's table holds one entry a row: the out-of-sample
prediction (``Version.pred_probs``: ``(N, 1)``). Folds are stratified by deciles of the values; the
models are the registered regressors (``labelq.predict.models``: ``hgb-regressor``, ``ridge``,
``tfidf-ridge``, ``embed-ridge``). Detection is ``labelq.detect.regression``: a score from the residual
over its robust spread, flags from a half-normal + uniform mixture the data fits, and the prediction as
the suggested value. ``suggested_label`` and ``corrected_label`` are float64; the catalog's
``issues``/``top_issues`` views name them ``given_value``, ``suggested_value`` and add the residual.

Review takes one number a row (``parse_answer``; the app's value box, a CSV cell, Label Studio's ``Number``);
re-labeling replaces flagged values by their predictions beyond a tolerance, with a guaranteed precision from a
reviewed sample (``labelq.relabel.run.relabel_values``); the benchmark report scores R², MAE and RMSE on each
bootstrap resample (``aggregate``). Refused with a clear error: LLM judges, the class detectors, label maps.
"""

from __future__ import annotations

import html
import logging
from typing import Any

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..benchmark.metrics import CorrectedLabels
from ..decide import Decision
from ..detect import DetectContext, Detection
from ..detect.regression import detect_regression, robust_scale
from ..detect.streaming_cl import whole
from ..errors import InputError
from ..labelkind import LabelKind, mean_ci, register
from ..reliability import check_value_signal
from ..report import plots
from ..report.audit import percent
from ..validation import plural

log = logging.getLogger(__name__)

DEFAULT_MODEL = {"tabular": "hgb-regressor", "text": "tfidf-ridge", "image": "ridge"}
STRATA = 10  # folds spread each decile of the values
RANGES = 5  # the report's table of flags by range of the target (quintiles)


def value_strata(values: np.ndarray, n: int = STRATA) -> np.ndarray:
    """``(N,)`` the decile (of ``n`` quantile bins) each value falls in."""
    edges = np.quantile(values, np.linspace(0, 1, n + 1)[1:-1]) if len(values) else np.empty(0)
    return np.searchsorted(edges, values, side="right").astype(np.int64)


def fmt(v: float | None) -> str | None:
    return None if v is None else f"{v:.4g}"


class Regression(LabelKind):
    name = "regression"
    sum_to_one = False
    bounded = False
    what = "target (a number a row, regression)"
    accuracy_name = "R²"
    accuracy_label = "R²"
    prior_label = "R² of always answering the mean"
    sql_suffix = "_regression"
    sql_label_name = "format('{:.4g}', label)"
    key_parts = {"task": "regression"}
    model_task = "regression"
    supports = frozenset({"review"})
    answer = "value"

    estimate_by = "the mixture's share of values unrelated to the inputs"
    filtered = False

    def label_fact(self, class_names: list[str]) -> tuple[str, Any]:
        return "target (a number a row, regression)", class_names[0]

    def labels(self, table: pa.Table, check: bool = False) -> np.ndarray:
        values = table[S.LABEL].to_numpy().astype(np.float64)
        if check and not np.isfinite(values).all():
            raise InputError("the target holds NaN or infinite values", "drop or fill those rows before auditing")
        return values

    def effective(self, table: pa.Table) -> np.ndarray:
        given = self.labels(table)
        corrected = table[S.CORRECTED_LABEL].to_numpy(zero_copy_only=False).astype(np.float64)  # nulls: NaN
        return np.where(np.isnan(corrected), given, corrected)

    def to_arrow(self, labels: np.ndarray) -> pa.Array:
        return pa.array(labels, pa.float64())

    def decision_columns(self, decision: Any) -> tuple[pa.Array, pa.Array]:
        corrected = decision.corrected_label
        return pa.array(decision.suggested_label, pa.float64()), pa.array(corrected, pa.float64(), mask=np.isnan(corrected))

    def differ(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a != b

    def codes(self, table: pa.Table) -> np.ndarray:
        return np.unique(self.labels(table), return_inverse=True)[1].reshape(-1).astype(np.int64)

    def class_codes(self, labels: np.ndarray) -> np.ndarray:
        return np.zeros(len(labels), np.int64)  # one group: the target

    def namer(self, class_names: list[str], sep: str = ", "):
        return fmt

    def strata(self, labels: np.ndarray) -> np.ndarray:
        return value_strata(labels)

    def check_folds(self, labels: np.ndarray, class_names: list[str], n_folds: int) -> None:
        if len(labels) == 0:
            raise InputError("the dataset is empty: there are no rows to audit", "check the source path, split and filters")
        if len(labels) < 2 * n_folds:
            raise InputError(f"{plural(len(labels), 'row', 'rows')} are too few for {n_folds}-fold cross-validation", "give more rows or fewer --folds")
        if np.ptp(labels) == 0:
            raise InputError(f"every row's target is {labels[0]:g}: there is nothing to learn", "check the label column and the split")

    def default_model(self, modality: str) -> str:
        return DEFAULT_MODEL[modality]

    def fit_predict(self, model: Any, X_train: Any, y_train: np.ndarray, X_test: Any, n_classes: int) -> np.ndarray:
        model.fit(X_train, y_train)
        return np.asarray(model.predict(X_test), dtype=np.float32).reshape(-1, 1)

    def accuracy(self, labels: np.ndarray, probs: Any) -> float:
        pred = whole(probs)[:, 0].astype(np.float64)
        variance = float(np.mean((labels - labels.mean()) ** 2))
        return 1.0 - float(np.mean((labels - pred) ** 2)) / variance if variance else 0.0

    def probs_problem(self, probs: np.ndarray) -> str | None:
        return None if probs.ndim == 2 and probs.shape[1] == 1 else f"has shape {probs.shape}, not one prediction a row"

    def check_audit(self, detector: str, judges: bool) -> None:
        if judges:
            raise InputError("LLM judges vote on classes, and this dataset's labels are numbers (regression)", "leave --judges out")
        if detector != "confident_learning":
            raise InputError(
                f"detector {detector!r} flags classes; a regression target has its own detector (residuals over their spread)", "leave --detector out"
            )

    def detect(self, options: Any, ctx: DetectContext, client: Any = None) -> Detection:
        pred = whole(ctx.pred_probs)[:, 0].astype(np.float64)
        found = detect_regression(ctx.labels, pred)
        spread = robust_scale(ctx.labels - pred)
        log.info(
            "regression: residual spread %.4g (1.4826 x MAD); the mixture puts %.1f%% of the values apart from the inputs; %d flagged",
            spread,
            100 * found.noise_share,
            int(found.is_issue.sum()),
        )
        extra = {"num_label_issues_estimate": int(round(found.noise_share * len(pred))), "p_wrong": found.p_wrong, "spread": spread}
        return Detection("regression_residual", found.score, found.is_issue, found.suggested, extra)

    def check_signal(self, labels: np.ndarray, probs: Any) -> dict:
        return check_value_signal(labels, whole(probs)[:, 0])

    def decide(
        self, detection: Detection, probs: Any, auto_fix: Any, votes: pa.Table | None, judging: Any, ids: pa.ChunkedArray, planted: pa.Table | None = None
    ):
        """Flags and ranks as for classes; an auto-fix replaces a flagged value by the prediction where the mixture
        gives the value at least ``min_confidence`` of being unrelated to the inputs."""
        score, flag = detection.score, detection.is_issue
        rank = np.zeros(len(score), np.int64)
        flagged = np.flatnonzero(flag)
        rank[flagged[np.argsort(score[flagged], kind="stable")]] = np.arange(1, len(flagged) + 1)
        corrected = np.full(len(score), np.nan)
        if auto_fix is not None:
            sure = flag & (detection.extra["p_wrong"] >= auto_fix.min_confidence)
            corrected[sure] = detection.suggested_label[sure]
        return Decision(score, flag, detection.suggested_label, rank, corrected), [detection], {}

    legend = (
        "A number a row: the label score is exp(-z / median z), z the residual over its robust spread (1.4826 x the median absolute deviation); "
        "low means the given value is far from what the inputs predict. A value is flagged where a half-normal + uniform mixture fitted to z "
        "finds it likelier unrelated to the inputs. The suggested value is the out-of-sample prediction."
    )

    def per_class_extra(self, rows: pa.Table, n_classes: int) -> list[dict]:
        """The target's figures: its residual spread, and the flags in each quintile of the given values."""
        given = self.labels(rows)
        pred = rows[S.SUGGESTED_LABEL].to_numpy(zero_copy_only=False).astype(np.float64)
        flagged = rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)
        bins = value_strata(given, RANGES)
        ranges = []
        for b in range(RANGES):
            inside = bins == b
            if inside.any():
                r = given[inside] - pred[inside]
                ranges.append(
                    {
                        "low": float(given[inside].min()),
                        "high": float(given[inside].max()),
                        "rows": int(inside.sum()),
                        "flagged": int(flagged[inside].sum()),
                        "mae": float(np.abs(r).mean()),
                    }
                )
        return [{"spread": robust_scale(given - pred), "ranges": ranges}]

    def rates_figure(self, class_names: list[str], per_class: list[dict], n_rows: int) -> str:
        ranges = per_class[0]["ranges"]
        names = [f"{fmt(r['low'])} to {fmt(r['high'])}" for r in ranges]
        return plots.class_rates(
            names, np.array([r["flagged"] / r["rows"] for r in ranges]), None, ylabel="% of rows in the range", title="Flagged values per range", kind="ranges"
        )

    def figures(self, version: Any, rows: pa.Table, class_names: list[str]) -> list[str]:
        given, pred = self.labels(rows), rows[S.SUGGESTED_LABEL].to_numpy(zero_copy_only=False).astype(np.float64)
        return [plots.residual_plot(given, pred, rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False), class_names[0])]

    def class_table(self, per_class: list[dict], health: dict | None) -> tuple[str, str, str]:
        e, p = html.escape, per_class[0]
        head = "<th>given values</th><th>rows</th><th>flagged</th><th>flagged %</th><th>mean absolute residual</th>"
        rows = "".join(
            f"<tr><td>{e(fmt(r['low']))} to {e(fmt(r['high']))}</td><td>{r['rows']:,}</td><td>{r['flagged']:,}</td>"
            f"<td>{percent(r['flagged'] / r['rows'])}</td><td>{r['mae']:.4g}</td></tr>"
            for r in p["ranges"]
        )
        return f"By range of {e(p['class_name'])} (residual spread {p['spread']:.4g})", head, rows

    def review_names(self, row: dict, class_names: list[str]) -> tuple[list[str], list[str]]:
        value = row[S.CORRECTED_LABEL] if row[S.CORRECTED_LABEL] is not None else row[S.SUGGESTED_LABEL]
        return [f"{row[S.LABEL]:.10g}"], [f"{value:.10g}"]

    def parse_answer(self, choices: list[str], class_names: list[str]) -> tuple[list, str | None]:
        """One finite number (the value the row should have)."""
        if len(choices) != 1:
            return [], f"{len(choices)} answers, not one value"
        try:
            value = float(choices[0])
        except ValueError:
            return [], f"{choices[0]!r} is not a number"
        return ([value], None) if np.isfinite(value) else ([], f"{choices[0]!r} is not a finite number")

    def answer_hint(self, class_names: list[str]) -> str:
        return "one number a row"

    def spelled(self, labels: list[str], answer: list) -> list[str]:
        return [repr(answer[0])]  # 52, 52.0 and 5.2e1 agree

    def review_control(self, class_names: list[str]) -> str:
        return f'<Number name="label" toName="item" required="true"/>  <!-- the {html.escape(class_names[0])} the row should have -->'

    def review_prediction(self, suggested: list[str]) -> dict:
        return {"from_name": "label", "to_name": "item", "type": "number", "value": {"number": float(suggested[0])}}

    def review_facts(self, version: Any) -> dict:
        """The target's name and the residuals' spread: how far a value usually is from its prediction."""
        rows = version.read(columns=[S.LABEL, S.SUGGESTED_LABEL])
        residual = self.labels(rows) - rows[S.SUGGESTED_LABEL].to_numpy(zero_copy_only=False)
        return {"target": version.manifest().class_names[0], "spread": robust_scale(residual)}

    def apply_reviews(self, rows: pa.Table, answers: dict[int, list], probs: np.ndarray) -> tuple[dict[str, list], int]:
        """``corrected_label`` the reviewed value where it differs from the given one; ``issue_kind`` ``ok`` where the
        reviewer kept the given value, else ``wrong_label``."""
        kind, corrected, labels, soft = S.pylists(rows, S.ISSUE_KIND, S.CORRECTED_LABEL, S.LABELS, S.SOFT_LABEL)
        given = self.labels(rows)
        changed = 0
        for i, (value,) in answers.items():
            before = corrected[i] if corrected[i] is not None else given[i]
            corrected[i] = None if value == given[i] else float(value)
            kind[i] = "ok" if corrected[i] is None else "wrong_label"
            changed += int((corrected[i] if corrected[i] is not None else given[i]) != before)
        return {S.ISSUE_KIND: kind, S.CORRECTED_LABEL: corrected, S.LABELS: labels, S.SOFT_LABEL: soft}, changed

    def relabel(self, cfg: Any, parent: Any, rows: pa.Table, probs: np.ndarray) -> tuple[pa.Table, dict]:
        from ..relabel.run import relabel_values

        return relabel_values(cfg, parent, rows, probs)

    benchmark_title = "R², MAE and RMSE"
    benchmark_metric = "R²"
    mixable = False  # R² of a mix of rows is not the mix of the subsets' R²: no prevalence curve
    benchmark_heads = {
        "original": "R², original values",
        "corrected": "R², corrected values",
        "mae_original": "MAE, original",
        "mae_corrected": "MAE, corrected",
        "rmse_original": "RMSE, original",
        "rmse_corrected": "RMSE, corrected",
        "mislabeled_subset": "R², originally wrong rows",
        "correct_subset": "R², other rows",
    }

    def corrected_labels(self, rows: pa.Table) -> CorrectedLabels:
        return CorrectedLabels(self.labels(rows), self.effective(rows), None, self)

    def read_predicted(self, table: pa.Table, class_names: list[str]) -> np.ndarray:
        """A predicted value a row: ``predicted_label`` (numbers), or ``pred_probs`` holding one number."""
        if "predicted_label" in table.column_names:
            raw = table["predicted_label"]
            if not (pa.types.is_floating(raw.type) or pa.types.is_integer(raw.type)):
                raise InputError(f"predicted_label holds {raw.type}, and the test set's target is a number", "give one predicted number a row")
            pred = raw.to_numpy(zero_copy_only=False).astype(np.float64)
        else:
            pred = np.array(table["pred_probs"].to_pylist(), dtype=np.float64)
            if pred.ndim != 2 or pred.shape[1] != 1:
                raise InputError(f"pred_probs must hold one predicted number a row, got shape {pred.shape}", "give predicted_label, one number a row")
            pred = pred[:, 0]
        if not np.isfinite(pred).all():
            raise InputError("the predictions hold NaN or infinite values", "predict a finite number for every row")
        return pred

    def scores(self, pred: np.ndarray, labels: CorrectedLabels) -> dict[str, np.ndarray]:
        """Per row, for each labeling: ``(squared error, squared deviation from the labeling's mean)`` (R²), the absolute
        error (MAE) and the squared error (RMSE)."""
        out = {}
        for labeling, y in (("original", labels.given), ("corrected", labels.corrected)):
            err = pred - y
            out[labeling] = np.column_stack([err**2, (y - y.mean()) ** 2])
            out[f"mae_{labeling}"], out[f"rmse_{labeling}"] = np.abs(err), err**2
        return out

    def aggregate(self, name: str, values: np.ndarray, boots: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float, float]:
        """R² (``1 - sum of squared errors / sum of squared deviations``), MAE, and RMSE (the root of the mean squared
        error; the root keeps the percentile interval's ends) on each bootstrap resample."""
        if name.startswith("rmse_"):
            return tuple(float(np.sqrt(v)) for v in mean_ci(values, boots, mask))
        if name.startswith("mae_"):
            return mean_ci(values, boots, mask)
        sse, sst = values[:, 0], values[:, 1]
        m = np.ones(len(sse), bool) if mask is None else mask
        if not m.any():
            return float("nan"), float("nan"), float("nan")
        w = m[boots]
        dist = 1.0 - (sse[boots] * w).sum(axis=1) / np.maximum((sst[boots] * w).sum(axis=1), 1e-300)
        lo, hi = np.percentile(dist[w.sum(axis=1) > 0], [2.5, 97.5])
        return 1.0 - float(sse[m].sum() / max(sst[m].sum(), 1e-300)), float(lo), float(hi)

    def benchmark_columns(self, label_sets: bool) -> list[str]:
        return list(self.benchmark_heads)


register(Regression())
