"""Detector samples: rows of *every* kind that people review so that the detectors are scored on real errors.

A calibration sample (``labelq.relabel.samples``) draws flagged rows only: it measures how often a flag is
right, never how many wrong labels the flags miss. To weigh detectors against each other, and to choose
how many rows to flag, the errors outside the flags count too. ``labelq review export NAME
--detector-sample N`` draws a stratified random sample over all rows of a version, recorded in the store
(``<store>/datasets/<name>/detector-samples/<id>.json``):

- ``flagged``: the rows any detector flagged (the version's ``is_label_issue`` and every ``flag_*`` column
  of its issues table: under ``--detector ensemble``, each candidate's), half of the sample;
- ``near``: the next most doubtful rows by ``label_score``, as many as twice the flagged ones (at least the
  sample's size), 30% of the sample;
- ``rest``: every other row, 20%.

Rows a small stratum cannot give go to the next one (a version with 6 flagged rows and a sample of 40: 6
flagged, 26 near, 8 of the rest).

Each stratum's rows are drawn uniformly, so a reviewed row stands for ``population / answered`` rows of its
stratum (rows drawn and not yet answered are left out: the weight is over the answered ones). With these
weights, ``reviewed_sample`` gives the next audit of the dataset the rows' verdicts (the given label is
wrong when the reviewed labels do not hold it), and ``--detector ensemble`` estimates each candidate's
precision, recall and F1 on real errors (``labelq.detect.ensemble``). Rows already reviewed when the sample
is drawn keep their answer and are not asked again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa

from . import schema as S
from .detect.context import ReviewedSample
from .errors import InputError
from .io import atomic_write_text
from .labelkind import kind_of
from .store import Store, Version

log = logging.getLogger(__name__)

FOLDER = "detector-samples"
STRATA = {"flagged": 0.5, "near": 0.3, "rest": 0.2}  # each stratum's share of the sample
NEAR = 2  # the near stratum: this many times the flagged rows, the most doubtful first


def _flagged(version: Version, rows: pa.Table) -> np.ndarray:
    """``(N,)`` bool: rows the version flags, or any detector whose flags its issues table keeps, flagged."""
    flagged = rows[S.IS_LABEL_ISSUE].fill_null(False).to_numpy(zero_copy_only=False).copy()
    if (version.path / "issues.parquet").exists():
        issues = version.read_table("issues")
        for name in issues.column_names:
            if name.startswith("flag_"):
                flagged |= issues[name].fill_null(False).to_numpy(zero_copy_only=False)
    return flagged


def draw_strata(flagged: np.ndarray, score: np.ndarray, size: int, rng: np.random.Generator) -> dict[str, tuple[int, np.ndarray]]:
    """Stratum -> (its rows, the positions drawn from it): ``size`` rows over the strata above, from the rows'
    ``flagged`` (any detector's) and ``score`` (low: likely wrong)."""
    order = np.argsort(score, kind="stable")
    unflagged = order[~flagged[order]]
    near = np.zeros(len(flagged), dtype=bool)
    near[unflagged[: max(NEAR * int(flagged.sum()), size)]] = True
    masks = {"flagged": flagged, "near": near, "rest": ~flagged & ~near}
    out, left, short = {}, size, 0
    for name, share in STRATA.items():
        pool = np.flatnonzero(masks[name])
        want = left if name == "rest" else int(round(share * size)) + short  # what a small stratum lacks goes to the next
        pick = rng.choice(pool, size=min(want, len(pool)), replace=False) if len(pool) else np.array([], dtype=np.int64)
        short, left = want - len(pick), left - len(pick)
        out[name] = (int(len(pool)), pick)
    return out


def draw_detector_sample(store: Store, version: Version, size: int, seed: int = 0) -> dict:
    """Draw a stratified random sample of ``size`` rows of ``version`` (the strata above), in a random order;
    ``save_detector_sample`` records it once its export is written."""
    if kind_of(version.manifest()).name != "single":
        raise InputError(
            f"{version.name} {version.tag} holds {kind_of(version.manifest()).name} labels; a detector sample scores the class detectors",
            "draw a detector sample of a dataset with one class a row; for others use `labelq review export --sample N`",
        )
    if size < 10:
        raise InputError(f"a detector sample needs at least 10 rows, got {size}", "pass --detector-sample 200 (for example)")
    rows = version.read(columns=[c for c in (S.ID, S.LABEL, S.LABEL_SCORE, S.IS_LABEL_ISSUE, S.LABEL_SOURCE) if c in version.column_names()])
    rng = np.random.default_rng(seed)
    picked = draw_strata(_flagged(version, rows), rows[S.LABEL_SCORE].fill_null(1.0).to_numpy(), size, rng)
    ids = np.asarray(rows[S.ID].to_pylist(), dtype=object)
    strata = {name: {"population": population, "ids": ids[np.sort(pick)].tolist()} for name, (population, pick) in picked.items()}
    drawn = [i for _, pick in picked.values() for i in ids[pick].tolist()]
    order_drawn = rng.permutation(len(drawn))
    done = set(ids[S.reviewed(rows)].tolist())
    return {
        "id": f"{version.tag}-{uuid.uuid4().hex[:8]}",
        "kind": "detectors",
        "dataset": version.name,
        "version": version.tag,
        "seed": seed,
        "size": len(drawn),
        "rows": int(len(ids)),
        "strata": strata,
        "ids": [drawn[j] for j in order_drawn],  # the order to review in: the strata interleaved, so a half-done sample is still balanced
        "open": [drawn[j] for j in order_drawn if drawn[j] not in done],  # the rows to ask about: the others have an answer
        "already_reviewed": sum(i in done for i in drawn),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def write_record(store: Store, record: dict, folder: str) -> Path:
    """Write a sample ``record`` into its dataset's ``folder`` of the store, atomically."""
    return atomic_write_text(store.dataset_dir(record["dataset"]) / folder / f"{record['id']}.json", json.dumps(record, indent=1))


def save_detector_sample(store: Store, record: dict) -> Path:
    """Record a detector sample in the store: the next ``--detector ensemble`` audit reads its reviewed rows."""
    path = write_record(store, record, FOLDER)
    strata = ", ".join(f"{n} {len(s['ids'])} of {s['population']:,}" for n, s in record["strata"].items())
    log.info("recorded detector sample %s of %s %s: %s", record["id"], record["dataset"], record["version"], strata)
    return path


def read_records(store: Store, name: str, folder: str, what: str) -> list[dict]:
    """Every sample record (``what``: its kind, for errors) in ``name``'s ``folder``, oldest first."""
    where = store.dataset_dir(name) / folder
    out = []
    for f in sorted(where.glob("*.json")) if where.is_dir() else []:
        try:
            out.append(json.loads(f.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"the {what} {f} is unreadable: {exc}", f"restore it from a backup, or move it out of {where}") from exc
    return sorted(out, key=lambda r: r["created_at"])


def read_detector_samples(store: Store, name: str) -> list[dict]:
    """Every detector sample recorded for ``name``, oldest first."""
    return read_records(store, name, FOLDER, "detector sample")


def open_sample_ids(store: Store, name: str, rows: pa.Table) -> list[str]:
    """The ids the detector samples drew that nobody has reviewed in ``rows`` (a version's), in the order to review them."""
    reviewed = set(rows[S.ID].filter(pa.array(S.reviewed(rows))).to_pylist())
    return list(dict.fromkeys(i for r in read_detector_samples(store, name) for i in r["ids"] if i not in reviewed))


def _verdicts(store: Store, name: str, since: int) -> dict[str, tuple[int, int, bool]]:
    """id -> (the version of its newest review, its given label, whether the person found it wrong), over the
    versions of ``name`` numbered ``since`` on (an audit after a review starts from the source and carries no reviews)."""
    out: dict[str, tuple[int, int, bool]] = {}
    for v in store.versions(name):
        if v.number < since or S.LABEL_SOURCE not in v.column_names():
            continue
        rows = v.read(columns=[S.ID, S.LABEL, S.LABELS, S.LABEL_SOURCE])
        done = S.reviewed(rows)
        if not done.any():
            continue
        part = rows.filter(pa.array(done))
        for rid, given, labels in zip(part[S.ID].to_pylist(), part[S.LABEL].to_pylist(), part[S.LABELS].to_pylist(), strict=True):
            out[rid] = (v.number, int(given), int(given) not in (labels or []))
    return out


def reviewed_sample(store: Store, name: str, ids: pa.Array | pa.ChunkedArray, labels: np.ndarray) -> ReviewedSample | None:
    """The answered rows of ``name``'s detector samples, as positions in the audit's rows ``ids`` with their
    verdicts and weights (None when no sample was drawn or none of its rows is answered). A sample counts the
    reviews published since it was drawn; a row whose given label in the audit is not the one reviewed is left
    out (the source changed); with several samples each is weighted by 1 / their number, so that the weights
    still add up to the rows."""
    samples = read_detector_samples(store, name)
    if not samples:
        return None
    drawn_in = [int(r["version"].lstrip("v")) for r in samples]
    verdict = _verdicts(store, name, min(drawn_in))  # the versions are read once, for every sample
    pos = {rid: p for p, rid in enumerate(ids.to_pylist())}
    parts = []
    for record, since in zip(samples, drawn_in, strict=True):
        for stratum in record["strata"].values():
            answered = [rid for rid in stratum["ids"] if rid in verdict and verdict[rid][0] >= since and rid in pos and labels[pos[rid]] == verdict[rid][1]]
            if answered:
                weight = stratum["population"] / len(answered)
                parts.append((np.array([pos[r] for r in answered]), np.array([verdict[r][2] for r in answered]), np.full(len(answered), weight), record["id"]))
    if not parts:
        log.info("detector samples of %s: none of their rows is reviewed yet", name)
        return None
    used = sorted({p[3] for p in parts})
    weight = np.concatenate([p[2] for p in parts]) / len(used)
    return ReviewedSample(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), weight, used)
