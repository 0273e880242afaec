"""Training-ready exports of a published version, following a re-labeling policy.

``export_training(version, out, policy)`` writes ``<out>/<split>.parquet`` (one file per split, so
``datasets.load_dataset(out)`` or ``load_dataset("parquet", data_dir=out)`` finds them) and
``<out>/export.json`` (what changed). Every file keeps ``id``, ``split``, the payload columns,
``label`` (the training label, a ``ClassLabel``; a multi-label dataset's tags, a ``Sequence(ClassLabel)``)
and ``original_label`` (the given one). Policies:

- ``keep``: every row, the given label;
- ``auto-fix``: every row; the corrected label where there is one (re-labeling or review);
- ``drop-issues``: corrected rows take the correction; other flagged rows are dropped, and so are rows
  that fit no class (``out_of_distribution``);
- ``soft``: as ``auto-fix``, plus ``soft_label`` (a probability vector per row) from re-labeling;
- ``multi``: as ``auto-fix``, plus ``labels`` (the label set); rows whose set is empty are dropped.

``soft`` and ``multi`` need a re-labeled version (``labelq relabel NAME``).

``with_provenance`` adds, for each row: ``label_source`` (``given``: the given label stands; ``relabel``: a
re-labeling rule; ``review``: a person; ``audit``: the audit's ``--auto-fix``), ``issue_kind``,
``label_score`` (the given label's quality, low: likely wrong), ``reviewers`` and ``n_reviewers`` (who
settled the row in review), and, for a dataset with several annotators a row, ``num_annotations`` and
``consensus_quality`` (CROWDLAB's, ``labelq.crowd``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import schema as S
from ..errors import InputError
from ..io import atomic_write_text, file_sha256, write_parquet
from ..labelkind import kind_of
from ..multilabel import class_counts
from ..store import Version
from ..validation import plural

POLICIES = ("keep", "auto-fix", "drop-issues", "soft", "multi")


def _policy_table(rows: pa.Table, policy: str) -> tuple[pa.Table, np.ndarray]:
    """(the training rows, which source rows were kept)."""
    n = rows.num_rows
    issue_kind = np.asarray(rows[S.ISSUE_KIND].to_pylist(), dtype=object)
    flagged = rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)
    kind = kind_of(rows)
    corrected = rows[S.CORRECTED_LABEL].is_null().to_numpy(zero_copy_only=False)  # True: no correction
    label = rows[S.LABEL] if policy == "keep" else kind.to_arrow(kind.effective(rows))
    keep = np.ones(n, bool)
    extra: dict[str, pa.ChunkedArray] = {}
    if policy == "drop-issues":
        keep = kind.export_keep(rows, ~((flagged & corrected) | (issue_kind == "out_of_distribution")))
    if policy in ("soft", "multi"):
        col = S.SOFT_LABEL if policy == "soft" else S.LABELS
        if col not in rows.column_names or rows[col].null_count == n:
            raise InputError(
                f"policy {policy!r} needs the {col!r} column, which this version lacks", "run `labelq relabel NAME` first, then export the version it publishes"
            )
        missing = rows[col].is_null().to_numpy(zero_copy_only=False)
        if missing.any():
            raise InputError(f"{plural(int(missing.sum()), 'row has', 'rows have')} no {col!r}", "run `labelq relabel NAME` on this version first")
        extra[col] = rows[col]
        if policy == "multi":
            keep &= pc.list_value_length(rows[col]).to_numpy(zero_copy_only=False) > 0
    payload = [c for c in rows.column_names if c not in S.DERIVED_COLUMNS and c not in (S.LABEL,)]
    out = rows.select(payload)
    out = out.append_column(S.LABEL, label).append_column(S.ORIGINAL_LABEL, rows[S.LABEL])
    for name, arr in extra.items():
        out = out.append_column(name, arr)
    return out.filter(pa.array(keep)), keep


def check_export_target(out: Path, store_root: Path, overwrite: bool) -> None:
    """Refuse an output folder that would put the store at risk or destroy something that is not an export:
    a folder inside the store or holding it, a file, or (with ``overwrite``) a non-empty folder without ``export.json``."""
    target, root = out.resolve(), store_root.resolve()
    if target == root or root in target.parents or target in root.parents:
        raise InputError(
            f"the export folder {out} is {'inside' if root in target.parents else 'the store or holds'} the store {store_root}",
            "write the export to a folder outside the store, e.g. -o train/",
        )
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file", "choose a folder for the export")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InputError(f"{out} exists and is not empty", "choose a new folder, or pass --overwrite to replace an earlier export")
        if not (out / "export.json").is_file():
            raise InputError(
                f"{out} is not an earlier labelq export (it has no export.json); --overwrite replaces only exports", "choose a new or empty folder"
            )
        try:
            ours = set(json.loads((out / "export.json").read_text())["files"]) | {"export.json"}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{out}/export.json is not a labelq export manifest ({exc})", "choose a new or empty folder") from None
        others = sorted(str(p.relative_to(out)) for p in out.rglob("*") if not p.is_dir() and str(p.relative_to(out)) not in ours)
        if others:
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            raise InputError(
                f"{out} holds files that the earlier export did not write: {shown}; --overwrite would delete them",
                "move them out of the folder, or export to a new folder",
            )


def provenance_columns(version: Version, rows: pa.Table) -> dict[str, pa.Array]:
    """Where each row's training label came from (module docstring), aligned with ``rows``."""
    n = rows.num_rows
    source, who = S.pylists(rows, S.LABEL_SOURCE, S.REVIEWER)
    corrected = rows[S.CORRECTED_LABEL].is_valid().to_numpy(zero_copy_only=False) if S.CORRECTED_LABEL in rows.column_names else np.zeros(n, bool)
    label_source = [s or ("audit" if corrected[i] else "given") for i, s in enumerate(source)]
    out = {
        "label_source": pa.array(label_source, pa.string()),
        S.ISSUE_KIND: rows[S.ISSUE_KIND].combine_chunks(),
        S.LABEL_SCORE: rows[S.LABEL_SCORE].combine_chunks(),
        "reviewers": pa.array(who, pa.string()),
        "n_reviewers": pa.array([0 if not w else len([x for x in w.split(",") if x.strip()]) for w in who], pa.int64()),
    }
    if (version.path / "consensus.parquet").exists():
        c = version.read_table("consensus")
        pos = {i: p for p, i in enumerate(c[S.ID].to_pylist())}
        take = pa.array([pos.get(i) for i in rows[S.ID].to_pylist()], pa.int64())
        out["num_annotations"] = c["num_annotations"].take(take).combine_chunks()
        out["consensus_quality"] = c["consensus_quality"].take(take).combine_chunks()
    return out


def export_training(version: Version, out: str | Path, policy: str = "auto-fix", overwrite: bool = False, with_provenance: bool = False) -> dict:
    """Write the training export of ``version`` under ``out``; returns the export manifest."""
    if policy not in POLICIES:
        raise InputError(f"unknown export policy {policy!r}", f"use one of {list(POLICIES)}")
    out = Path(out)
    check_export_target(out, version.path.parent.parent.parent, overwrite)
    rows = version.read()
    info = S.info_of(rows)
    table, keep = _policy_table(rows, policy)
    if with_provenance:
        mask = pa.array(keep)
        for name, col in provenance_columns(version, rows).items():
            table = table.append_column(name, col.filter(mask))
    meta_info = dataclasses.replace(info, source=f"{version.name} {version.tag} ({policy})", deferred=None)
    k, kind = len(info.class_names), kind_of(info)
    given, label = kind.labels(rows), kind.labels(S.with_info(table, info))
    relabeled = int(kind.differ(label, given[keep]).sum())
    rows_out = table.num_rows
    table, meta_info = kind.export_table(table, meta_info)  # tokens: a sentence a row again
    tmp = out.parent / f".tmp-export-{uuid.uuid4().hex}"
    try:
        tmp.mkdir(parents=True)
    except OSError as exc:
        raise InputError(
            f"the export cannot be written to {out} ({exc.strerror}: {exc.filename})", "choose a folder you can write to, e.g. -o train/"
        ) from None
    try:
        files = {}
        for split in sorted(set(table[S.SPLIT].to_pylist())):
            part = S.with_info(table.filter(pc.equal(table[S.SPLIT], split)), meta_info)
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in split) or "data"
            files[f"{safe}.parquet"] = file_sha256(write_parquet(tmp / f"{safe}.parquet", part))
        manifest = {
            "dataset": version.name,
            "version": version.tag,
            "policy": policy,
            "provenance": with_provenance,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "rows_in": rows.num_rows,
            "rows_out": rows_out,
            "records": table.num_rows,  # the files' rows: ``rows_out`` but for token tags, whose rows are written a sentence a record
            "dropped": int((~keep).sum()),
            "relabeled": relabeled,
            "class_names": info.class_names,
            "multi_label": info.multi_label,
            "class_counts_given": class_counts(kind.class_codes(given), k).tolist(),
            "class_counts_out": class_counts(kind.class_codes(label), k).tolist(),
            "files": files,
        }
        atomic_write_text(tmp / "export.json", json.dumps(manifest, indent=2))
        if out.exists():
            old = out.parent / f".old-export-{uuid.uuid4().hex}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
