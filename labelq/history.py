"""Audit history and alerts.

Every audit run appends one record to ``<store>/datasets/<name>/history/`` (one JSON file per run,
written atomically when the run ends, so a killed run leaves no half record and concurrent runs
never write the same file). The catalog's ``history`` view reads them. A record holds the time, the
version and its content hash, rows, flagged rows, confident learning's estimated label-error rate with
a 95% bootstrap interval, per-class flagged rates and class shares, the detector and model, how many
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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import LabelqError
from .io import atomic_write_text
from .validation import check_fraction

log = logging.getLogger(__name__)


class AuditAlert(LabelqError):
    """An audit published its version but broke an alert rule."""


@dataclass(frozen=True)
class AlertRules:
    max_rate: float | None = None
    max_increase: float | None = None
    max_class_shift: float | None = None

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value is not None:
                check_fraction(value, name.replace("_", " "))

    def any(self) -> bool:
        return any(v is not None for v in asdict(self).values())


def error_rate_interval(labels: np.ndarray, pred_probs: np.ndarray, n_boot: int = 200, seed: int = 0) -> tuple[float, float, float]:
    """Confident learning's estimated share of label errors and its 95% bootstrap interval (rows resampled)."""
    from cleanlab.count import num_label_issues

    n = len(labels)
    est = num_label_issues(labels, pred_probs) / n
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        try:
            boots.append(num_label_issues(labels[idx], pred_probs[idx]) / n)
        except (ValueError, ZeroDivisionError):  # a resample that lost a class entirely
            continue
    lo, hi = np.percentile(boots, [2.5, 97.5]) if boots else (float("nan"), float("nan"))
    return float(est), float(lo), float(hi)


def history_dir(store, name: str) -> Path:
    return store.dataset_dir(name) / "history"


def read_history(store, name: str) -> list[dict]:
    """Every recorded run of ``name``, oldest first."""
    d = history_dir(store, name)
    if not d.exists():
        return []
    runs = [json.loads(p.read_text()) for p in d.glob("*.json")]
    return sorted(runs, key=lambda r: (r["finished_at"], r["run_id"]))


def check_alerts(record: dict, previous: dict | None, rules: AlertRules) -> list[str]:
    """The alert reasons for ``record`` given the previous run (empty: all is well)."""
    reasons = []
    rate = record["estimated_error_rate"]
    if rules.max_rate is not None and rate > rules.max_rate:
        reasons.append(f"estimated label-error rate {rate:.2%} is above the limit {rules.max_rate:.2%}")
    if previous is not None:
        before = previous["estimated_error_rate"]
        if rules.max_increase is not None and rate - before > rules.max_increase:
            reasons.append(f"estimated label-error rate rose from {before:.2%} to {rate:.2%} (more than {rules.max_increase:.2%})")
        if rules.max_class_shift is not None and previous.get("class_names") == record["class_names"]:
            shift = np.abs(np.asarray(record["class_share"]) - np.asarray(previous["class_share"]))
            worst = int(shift.argmax())
            if shift[worst] > rules.max_class_shift:
                reasons.append(f"class {record['class_names'][worst]!r} moved from {previous['class_share'][worst]:.2%} to "
                               f"{record['class_share'][worst]:.2%} of the rows (more than {rules.max_class_shift:.2%})")
    return reasons


def record_run(store, version, labels: np.ndarray, pred_probs: np.ndarray, flagged: np.ndarray, started: dt.datetime, folds_cached: int | None,
               folds_total: int | None, rules: AlertRules | None = None, run: dict | None = None, seed: int = 0) -> dict:
    """Write the history record of a finished audit, with its alerts; returns the record."""
    manifest = version.manifest()
    k = len(manifest["class_names"])
    est, lo, hi = error_rate_interval(labels, pred_probs, seed=seed)
    counts = np.bincount(labels, minlength=k)
    finished = dt.datetime.now(dt.timezone.utc)
    record = {
        "run_id": uuid.uuid4().hex,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "duration_s": round((finished - started).total_seconds(), 2),
        "version": version.number,
        "content_hash": manifest["content_hash"],
        "rows": int(len(labels)),
        "flagged": int(flagged.sum()),
        "flagged_rate": float(flagged.mean()),
        "estimated_error_rate": est, "estimated_error_rate_lo": lo, "estimated_error_rate_hi": hi,
        "class_names": manifest["class_names"],
        "class_share": (counts / max(len(labels), 1)).tolist(),
        "class_flagged_rate": [float(flagged[labels == c].mean()) if counts[c] else 0.0 for c in range(k)],
        "detector": {"name": "confident_learning", "filter_by": manifest.get("filter_by"), "cleanlab": _version("cleanlab")},
        "model": manifest.get("model"), "model_config": manifest.get("model_config"), "labelq": manifest.get("labelq_version"),
        "folds_cached": folds_cached, "folds_total": folds_total,
        "unchanged_source": None,
        "flow_run_id": (run or {}).get("flow_run_id"),
    }
    previous = read_history(store, version.name)
    last = previous[-1] if previous else None
    record["unchanged_source"] = bool(last and last["content_hash"] == record["content_hash"])
    record["alerts"] = check_alerts(record, last, rules or AlertRules())
    record["status"] = "alert" if record["alerts"] else "ok"
    stamp = finished.strftime("%Y%m%dT%H%M%S")
    atomic_write_text(history_dir(store, version.name) / f"{stamp}-{record['run_id'][:12]}.json", json.dumps(record, indent=1))
    from .sql import refresh_catalog

    with store.lock(version.name):
        refresh_catalog(store, version.name)  # the catalog's `history` table
    return record


def raise_alerts(record: dict, name: str) -> None:
    if record["alerts"]:
        for reason in record["alerts"]:
            log.error("ALERT %s v%04d: %s", name, record["version"], reason)
        raise AuditAlert(f"audit of {name} v{record['version']:04d} raised alerts: " + "; ".join(record["alerts"]),
                         "look at the report and `labelq history`; the version was published")


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
