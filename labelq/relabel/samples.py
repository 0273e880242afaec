"""Calibration samples: uniformly random samples of a version's flagged rows, recorded in the store
(``<store>/datasets/<name>/samples/<id>.json``) when a review export draws them. Only reviews of recorded
samples calibrate corrections (``relabel --target-precision``, the benchmark report's verified rows), and a
sample counts only for the flagged set it was drawn from."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..errors import InputError
from ..io import atomic_write_text
from ..labelkind import check_supports
from ..store import Store, Version

log = logging.getLogger(__name__)

SAMPLES = "samples"  # <store>/datasets/<name>/samples/<id>.json: the calibration samples drawn so far


def flagged_sha256(rows: pa.Table) -> str:
    """A fingerprint of which rows are flagged: calibration samples only count for the flagged set they were drawn from."""
    import hashlib

    ids = sorted(rows[S.ID].filter(rows[S.IS_LABEL_ISSUE].fill_null(False)).to_pylist())  # the flagged ids only: no Python string for the others
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def read_samples(store: Store, name: str) -> list[dict]:
    """Every calibration sample recorded for ``name``, oldest first."""
    folder = store.dataset_dir(name) / SAMPLES
    out = []
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out.append(json.loads(f.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"the calibration sample {f} is unreadable: {exc}", f"restore it from a backup, or move it out of {folder}") from exc
    return sorted(out, key=lambda r: r["created_at"])


def sampled_ids(store: Store, name: str, rows: pa.Table) -> list[str]:
    """The ids that the calibration samples of ``rows``' flagged set drew, in the order they were drawn."""
    key = flagged_sha256(rows)
    return list(dict.fromkeys(i for r in read_samples(store, name) if r["flagged_sha256"] == key for i in r["ids"]))


def draw_sample(store: Store, version: Version, size: int, seed: int = 0) -> dict:
    """Draw a uniformly random sample of ``size`` flagged rows of ``version`` that nobody has reviewed and no
    earlier sample of the same flagged set holds. ``save_sample`` records it (once its export is written)."""
    import uuid

    check_supports(version, "review", "the review loop")
    if size < 1:
        raise InputError(f"the sample size must be at least 1, got {size}", "pass --sample 100 (for example)")
    rows = version.read(columns=[c for c in (S.ID, S.IS_LABEL_ISSUE, S.LABEL_SOURCE) if c in version.column_names()])
    ids = np.asarray(rows[S.ID].to_pylist(), dtype=object)
    eligible = np.flatnonzero(rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False) & ~S.reviewed(rows) & ~np.isin(ids, sampled_ids(store, version.name, rows)))
    if len(eligible) == 0:
        raise InputError(f"{version.name} {version.tag} has no flagged row left to sample (none flagged, or all reviewed or sampled)", "nothing to draw")
    pick = np.random.default_rng(seed).choice(eligible, size=min(size, len(eligible)), replace=False)
    record = {
        "id": f"{version.tag}-{uuid.uuid4().hex[:8]}",
        "dataset": version.name,
        "version": version.tag,
        "seed": seed,
        "size": len(pick),
        "population": int(len(eligible)),
        "flagged_sha256": flagged_sha256(rows),
        "ids": ids[pick].tolist(),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    return record


def save_sample(store: Store, record: dict) -> Path:
    """Record a calibration sample in the store: only reviews of recorded samples calibrate corrections."""
    path = atomic_write_text(store.dataset_dir(record["dataset"]) / SAMPLES / f"{record['id']}.json", json.dumps(record, indent=1))
    log.info(
        "recorded calibration sample %s: %d of %d flagged rows of %s %s",
        record["id"],
        record["size"],
        record["population"],
        record["dataset"],
        record["version"],
    )
    return path


def calibration_reviews(store: Store, rows: pa.Table, name: str) -> tuple[np.ndarray, int]:
    """Positions of the rows of ``rows`` that a calibration sample of this flagged set drew and a person
    reviewed, and how many rows the samples drew in all (answered or not)."""
    drawn = sampled_ids(store, name, rows)
    ids = np.asarray(rows[S.ID].to_pylist(), dtype=object)
    return np.flatnonzero(np.isin(ids, drawn) & S.reviewed(rows)), len(drawn)
