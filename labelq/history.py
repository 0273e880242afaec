"""Audit history and alerts.

Every audit run writes one record, ``run.json``, into the version it publishes: the record is written
in the version's temporary folder and appears with it in one rename, so a run killed at any point
leaves either a version with its record or neither, and concurrent runs (serialized by the store's
lock) compare with each other in publishing order. The catalog's ``history`` table is rebuilt from
them, and from ``history/*.json``: the records of runs that published nothing (every file equal to the
latest version's: ``Store.publish(skip_unchanged=True)``) and of versions removed by ``Store.gc``. A record holds the time, the
version and its content hash, rows, flagged rows, confident learning's estimated label-error rate with
a 95% Wilson interval, per-class flagged rates and class shares, the detector and model, how many
folds came from the cache, the duration, and any alerts.

Alerts (``AlertRules``) compare a run with the previous recorded run of the same dataset: the
estimated error rate above ``max_rate``, up by more than ``max_increase`` (absolute), or a class's
share of the rows moved by more than ``max_class_shift``. A run with alerts still publishes its
version (the data is valid; its quality changed), records ``status = "alert"``, logs at ERROR and
raises ``AuditAlert``, so the Prefect flow run ends Failed with the reasons and the CLI exits 3.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LabelqError
from .manifest import Manifest, NeighborSummary, Section
from .multilabel import class_counts
from .options import option
from .validation import check_fraction
from .writer import RUN_RECORD

log = logging.getLogger(__name__)


class AuditAlert(LabelqError):
    """An audit published its version but broke an alert rule."""


@dataclass(frozen=True)
class AlertRules:
    """When an audit alerts (exit 3, a Prefect run ends Failed): each rule is off while None."""

    max_rate: float | None = option(
        "--alert-max-rate", dest="alert_max_rate", type=float, help="Alert (exit 3, Prefect run Failed) if the estimated error rate is above this share."
    )
    max_increase: float | None = option(
        "--alert-max-increase",
        dest="alert_max_increase",
        type=float,
        help="Alert if the estimated error rate rose by more than this (absolute) since the last run.",
    )
    max_class_shift: float | None = option(
        "--alert-class-shift", dest="alert_max_class_shift", type=float, help="Alert if a class's share of the rows moved by more than this since the last run."
    )

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value is not None:
                check_fraction(value, name.replace("_", " "))

    def any(self) -> bool:
        return any(v is not None for v in asdict(self).values())


def error_rate_interval(n_issues: int, n_rows: int, z: float = 1.959964) -> tuple[float, float, float]:
    """Confident learning's estimated share of label errors (``num_label_issues / N``) and its 95% Wilson
    score interval, treating each row's verdict as a Bernoulli draw.

    Closed form: it replaces a bootstrap of 200 full re-runs (52 of a 60 s audit at 200k rows). The
    bootstrap also re-estimates the per-class thresholds, so it was slightly wider: CIFAR-10's test set
    (``../shared/benchmarks/label-errors``) 2.44% [2.12, 2.79] by bootstrap, [2.16, 2.76] by Wilson;
    MNIST [0.07, 0.23] and [0.09, 0.25].
    """
    if n_rows <= 0:
        return float("nan"), float("nan"), float("nan")
    p = n_issues / n_rows
    denom = 1 + z * z / n_rows
    centre = (p + z * z / (2 * n_rows)) / denom
    half = z * np.sqrt(p * (1 - p) / n_rows + z * z / (4 * n_rows * n_rows)) / denom
    return float(p), float(max(0.0, centre - half)), float(min(1.0, centre + half))


@dataclass(frozen=True)
class RunRecord(Section):
    """One audit run, as ``run.json`` (or ``history/<run_id>.json``) holds it; a key it does not know stays in
    ``extra`` and is written back. Records from before a field existed read it as None."""

    run_id: str | None = None
    started_at: str | None = None
    finished_at: str | None = None  # milliseconds: two quick runs can finish in the same second, and the history is ordered by this
    duration_s: float | None = None
    version: int | None = None
    content_hash: str | None = None
    unchanged_source: bool | None = None
    published: bool | None = None  # False: every file equalled the latest version's, nothing was published
    rows: int | None = None
    flagged: int | None = None
    flagged_rate: float | None = None
    estimated_error_rate: float | None = None
    estimated_error_rate_lo: float | None = None
    estimated_error_rate_hi: float | None = None
    class_names: list[str] | None = None
    class_share: list[float] | None = None
    class_flagged_rate: list[float] | None = None
    folds_cached: int | None = None
    folds_total: int | None = None
    flow_run_id: str | None = None
    reliable: bool | None = None  # False: the model was no better than the class prior, and the rates mean nothing
    near_duplicate_rows: int | None = None
    near_duplicate_sets: int | None = None
    exact_duplicate_rows: int | None = None
    leaking_rows: int | None = None
    conflicting_rows: int | None = None
    outlier_rows: int | None = None
    detector: dict | None = None
    model: str | None = None
    model_config: dict | None = None
    labelq: str | None = None
    alerts: list[str] = field(default_factory=list)
    status: str | None = None  # "ok" or "alert"
    extra: dict[str, Any] = field(default_factory=dict)


def history_dir(store, name: str) -> Path:
    return store.dataset_dir(name) / "history"


def read_history(store, name: str) -> list[RunRecord]:
    """Every recorded run of ``name``, oldest first: the records inside its versions (and older ``history/*.json``)."""
    runs = {}
    for path in [*sorted(history_dir(store, name).glob("*.json")), *sorted(store.dataset_dir(name).glob(f"v[0-9]*/{RECORD}"))]:
        record = RunRecord.from_json(json.loads(path.read_text()))
        runs[record.run_id] = record
    return sorted(runs.values(), key=lambda r: (r.finished_at, r.run_id))


def check_alerts(record: RunRecord, previous: RunRecord | None, rules: AlertRules) -> list[str]:
    """The alert reasons for ``record`` given the previous run (empty: all is well)."""
    reasons = []
    rate = record.estimated_error_rate
    if rules.max_rate is not None and rate > rules.max_rate:
        reasons.append(f"estimated label-error rate {rate:.2%} is above the limit {rules.max_rate:.2%}")
    if previous is not None:
        before = previous.estimated_error_rate
        if rules.max_increase is not None and rate - before > rules.max_increase:
            reasons.append(f"estimated label-error rate rose from {before:.2%} to {rate:.2%} (more than {rules.max_increase:.2%})")
        if rules.max_class_shift is not None and previous.class_names == record.class_names:
            shift = np.abs(np.asarray(record.class_share) - np.asarray(previous.class_share))
            worst = int(shift.argmax())
            if shift[worst] > rules.max_class_shift:
                reasons.append(
                    f"class {record.class_names[worst]!r} moved from {previous.class_share[worst]:.2%} to "
                    f"{record.class_share[worst]:.2%} of the rows (more than {rules.max_class_shift:.2%})"
                )
    return reasons


RECORD = RUN_RECORD  # the store lists it among a version's files


def prepare_record(
    store,
    labels: np.ndarray,
    n_classes: int,
    n_issues_estimate: int,
    flagged: np.ndarray,
    started: dt.datetime,
    folds_cached: int | None,
    folds_total: int | None,
    rules: AlertRules | None = None,
    run: dict | None = None,
    reliable: bool = True,
    duplicates: NeighborSummary | None = None,
):
    """The history record of an audit about to publish, as ``Store.publish``'s ``records`` callback.
    ``reliable`` False: the model is no better than the class prior, and the record says its rates mean nothing.
    ``duplicates``: the near-duplicate check's counts (``NeighborChecks.info``; None: not checked, the counts are null).

    The per-row parts (per-class rates) are computed now; the callback, called
    with the store's lock held, adds the version, content hash and models from the manifest and the
    alerts against the previous recorded run.
    """
    k = n_classes
    est, lo, hi = error_rate_interval(n_issues_estimate, len(labels))
    counts = class_counts(labels, k)
    base = RunRecord(
        run_id=uuid.uuid4().hex,
        started_at=started.isoformat(timespec="milliseconds"),
        rows=int(len(labels)),
        flagged=int(flagged.sum()),
        flagged_rate=float(flagged.mean()) if len(flagged) else 0.0,
        estimated_error_rate=est,
        estimated_error_rate_lo=lo,
        estimated_error_rate_hi=hi,
        class_share=(counts / max(len(labels), 1)).tolist(),
        class_flagged_rate=(class_counts(labels, k, flagged) / np.maximum(counts, 1)).tolist(),
        folds_cached=folds_cached,
        folds_total=folds_total,
        flow_run_id=(run or {}).get("flow_run_id"),
        reliable=reliable,
        **{
            key: getattr(duplicates, key) if duplicates is not None else None
            for key in ("near_duplicate_rows", "near_duplicate_sets", "exact_duplicate_rows", "leaking_rows", "conflicting_rows", "outlier_rows")
        },
    )

    def complete(manifest: Manifest) -> dict[str, dict]:
        finished = dt.datetime.now(dt.UTC)
        record = replace(
            base,
            finished_at=finished.isoformat(timespec="milliseconds"),
            duration_s=round((finished - started).total_seconds(), 2),
            version=manifest.version,
            content_hash=manifest.content_hash,
            class_names=manifest.class_names,
            detector={
                "name": (manifest.audit.detectors or ["confident_learning"])[0],
                "filter_by": manifest.audit.filter_by,
                "cleanlab": _version("cleanlab"),
            },
            model=manifest.audit.model,
            model_config=manifest.audit.model_config,
            labelq=manifest.labelq_version,
        )
        previous = read_history(store, manifest.name)
        last = previous[-1] if previous else None
        record = replace(record, unchanged_source=bool(last and last.content_hash == record.content_hash))
        alerts = check_alerts(record, last, rules or AlertRules())
        record = replace(record, alerts=alerts, status="alert" if alerts else "ok")
        return {RECORD: record.to_json()}  # the store writes it into the version (``published``: True) or history/ (False)

    return complete


def raise_alerts(record: RunRecord, name: str) -> None:
    if record.alerts:
        for reason in record.alerts:
            log.error("ALERT %s v%04d: %s", name, record.version, reason)
        raise AuditAlert(
            f"audit of {name} v{record.version:04d} raised alerts: " + "; ".join(record.alerts),
            "look at the report and `labelq history`; the version was published",
        )


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
