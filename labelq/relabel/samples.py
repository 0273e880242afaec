"""Calibration samples: uniformly random samples of a version's flagged rows, recorded in the store
(``<store>/datasets/<name>/samples/<id>.json``) when a review export draws them. Only reviews of recorded
samples calibrate corrections (``relabel --target-precision``, the benchmark report's verified rows), and a
sample counts only for the flagged set it was drawn from."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..detector_samples import read_records, write_record
from ..errors import InputError
from ..labelkind import check_supports, kind_of
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
    return read_records(store, name, SAMPLES, "calibration sample")


def sampled_ids(store: Store, name: str, rows: pa.Table) -> list[str]:
    """The ids that the calibration samples of ``rows``' flagged set drew, in the order they were drawn."""
    return list(dict.fromkeys(i for i, _ in sampled_units(store, name, rows)))


def draw_sample(store: Store, version: Version, size: int, seed: int = 0) -> dict:
    """Draw a uniformly random sample of ``size`` flagged rows of ``version`` that nobody has reviewed and no
    earlier sample of the same flagged set holds. ``save_sample`` records it (once its export is written)."""
    import uuid

    check_supports(version, "review", "the review loop")
    if size < 1:
        raise InputError(f"the sample size must be at least 1, got {size}", "pass --sample 100 (for example)")
    names = version.column_names()
    rows = version.read(columns=[c for c in (S.ID, S.LABEL, S.IS_LABEL_ISSUE, S.LABEL_SOURCE, S.MISSING_TAGS, S.EXTRA_TAGS) if c in names])
    ids = np.asarray(rows[S.ID].to_pylist(), dtype=object)
    where, keys = kind_of(version.manifest()).review_units(rows)  # one unit a flagged row, or one a flagged tag
    taken = {(i, k) for i, k in sampled_units(store, version.name, rows)}
    open_unit = ~S.reviewed(rows)[where] & np.array([(ids[p], int(k)) not in taken for p, k in zip(where, keys)], dtype=bool)
    eligible = np.flatnonzero(open_unit)
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
        "ids": list(dict.fromkeys(ids[where[pick]].tolist())),  # the rows to review, in the order drawn
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if (keys[pick] >= 0).any():  # units below the row (a tag of it): which ones were drawn
        record["units"] = [[str(ids[where[j]]), int(keys[j])] for j in pick]
    return record


def sampled_units(store: Store, name: str, rows: pa.Table) -> list[tuple[str, int]]:
    """The units the calibration samples of ``rows``' flagged set drew, in order: ``(id, key)``, key -1 for a row."""
    key = flagged_sha256(rows)
    out = []
    for r in read_samples(store, name):
        if r["flagged_sha256"] == key:
            out += [(i, int(k)) for i, k in r["units"]] if "units" in r else [(i, -1) for i in r["ids"]]
    return list(dict.fromkeys(out))


def save_sample(store: Store, record: dict) -> Path:
    """Record a calibration sample in the store: only reviews of recorded samples calibrate corrections."""
    path = write_record(store, record, SAMPLES)
    log.info(
        "recorded calibration sample %s: %d of %d flagged rows of %s %s",
        record["id"],
        record["size"],
        record["population"],
        record["dataset"],
        record["version"],
    )
    return path


def calibration_units(store: Store, rows: pa.Table, name: str) -> tuple[list[tuple[int, int]], int]:
    """The drawn units whose rows a person reviewed, as ``(row position, key)``, and how many units the samples drew."""
    drawn = sampled_units(store, name, rows)
    pos = {i: p for p, i in enumerate(rows[S.ID].to_pylist())}
    reviewed = S.reviewed(rows)
    return [(pos[i], k) for i, k in drawn if i in pos and reviewed[pos[i]]], len(drawn)


def calibration_reviews(store: Store, rows: pa.Table, name: str) -> tuple[np.ndarray, int]:
    """Positions of the rows of ``rows`` that a calibration sample of this flagged set drew and a person
    reviewed, and how many rows the samples drew in all (answered or not)."""
    drawn = sampled_ids(store, name, rows)
    ids = np.asarray(rows[S.ID].to_pylist(), dtype=object)
    return np.flatnonzero(np.isin(ids, drawn) & S.reviewed(rows)), len(drawn)
