"""The human-review loop: export the rows that need a person, import their answers, publish them.

Export (``export_review``) writes either Label Studio's import JSON (one task per row: the image as a
PNG data URI or the text, labelq's suggestion as a pre-annotation in ``predictions``, the row's id,
dataset and version in ``data``), with the matching labeling config beside it
(``<file>.label_config.xml``: multiple-choice over the classes plus "None of these"), or a CSV with
empty ``review_labels``, ``reviewer`` and ``reviewed_at`` columns (images go to ``<file>_images/``).

Import (``read_reviews``) reads Label Studio's export JSON (the latest non-cancelled annotation of
each task; the reviewer is the annotator's email or id) or the filled CSV (``review_labels``: class
names separated by ``|``, or ``None of these``). Everything is checked before anything is written: the
dataset, the version (a review of an older version than the latest is refused, since rows and
suggestions may have changed), unknown ids, duplicate ids, unknown class names, missing reviewers.

Applying (``apply_step``) sets, for every reviewed row: ``labels`` (the reviewer's set), ``issue_kind``
(``ok`` when the set is the given label alone, ``wrong_label`` when it is one other class,
``multi_label`` for several, ``out_of_distribution`` for none), ``corrected_label`` (the reviewed class
when the given label is not in the set; of several, the one the model finds most probable),
``soft_label`` (uniform over the set), ``label_source = 'review'``, ``reviewer`` and ``reviewed_at``.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..errors import InputError
from ..io import atomic_write_text, file_sha256
from ..labelkind import NONE_OF_THESE, check_supports, kind_of
from ..manifest import ReviewSection
from ..predict import pred_probs_array
from ..runner import InProcess, Runner, step
from ..store import Store, Version

log = logging.getLogger(__name__)

FORMATS = ("label-studio", "csv")
REVIEW_KINDS = ("ambiguous", "multi_label", "out_of_distribution")
CSV_COLUMNS = (
    "labelq_dataset",
    "labelq_version",
    "id",
    "given_label",
    "suggestion",
    "issue_kind",
    "label_score",
    "item",
    "review_labels",
    "reviewer",
    "reviewed_at",
)


def needs_review(rows: pa.Table, all_flagged: bool = False) -> np.ndarray:
    """Row positions a person should see, most suspicious first: flagged rows not yet reviewed whose
    kind asks for a person (``REVIEW_KINDS``) or that have no correction; ``all_flagged``: every flagged row."""
    flagged = rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)
    kind = np.asarray(rows[S.ISSUE_KIND].to_pylist(), dtype=object)
    corrected = rows[S.CORRECTED_LABEL].is_null().to_numpy(zero_copy_only=False)
    want = flagged & ~S.reviewed(rows)
    if not all_flagged:
        want &= np.isin(kind, REVIEW_KINDS) | corrected
    pos = np.flatnonzero(want)
    rank = rows[S.ISSUE_RANK].fill_null(np.iinfo(np.int64).max).to_numpy()
    return pos[np.argsort(rank[pos], kind="stable")]


def suggestion(row: dict, classes: list[str]) -> list[str]:
    """One class a row: labelq's suggestion (the label set of a multi_label row, the correction, else the suggested label)."""
    if row[S.ISSUE_KIND] == "multi_label" and row.get(S.LABELS):
        return [classes[c] for c in row[S.LABELS]]
    if row[S.CORRECTED_LABEL] is not None:
        return [classes[row[S.CORRECTED_LABEL]]]
    return [classes[row[S.SUGGESTED_LABEL]]]


def _item(row: dict, info: S.ExamplesInfo) -> tuple[str, str]:
    """(Label Studio data key, value) for a row: an image data URI, the text, or the features as text."""
    col = info.inputs[0]
    if info.modality == "image":
        from ..ingest.images import as_png

        return "image", "data:image/png;base64," + base64.b64encode(as_png(row[col])).decode()
    if info.modality == "text":
        return "text", str(row[col])
    return "text", ", ".join(f"{c}={row[c]}" for c in info.inputs)


def label_config(info: S.ExamplesInfo) -> str:
    """Label Studio labeling config for the exported tasks."""
    tag = '<Image name="item" value="$image"/>' if info.modality == "image" else '<Text name="item" value="$text"/>'
    return (
        f'<View>\n  {tag}\n  <Header value="Given label: $given_label (labelq suggests: $suggestion)"/>\n'
        f"  {kind_of(info).review_control(info.class_names)}\n</View>\n"
    )


def export_review(
    version: Version, path: str | Path, fmt: str = "label-studio", all_flagged: bool = False, limit: int | None = None, sample: dict | None = None
) -> tuple[Path, int]:
    """Write the rows of ``version`` that need review to ``path``, or the rows of a calibration ``sample``
    (``draw_sample``) in their random order; returns (path, rows written)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown review format {fmt!r}", f"use one of {list(FORMATS)}")
    check_supports(version, "review", "the review loop")
    path = Path(path)
    rows = version.read()
    info = S.info_of(rows)
    if sample is not None:
        where = {i: p for p, i in enumerate(rows[S.ID].to_pylist())}
        pos = np.array([where[i] for i in sample["ids"]], dtype=np.int64)
    else:
        pos = needs_review(rows, all_flagged)[:limit]
    picked = rows.take(pa.array(pos, pa.int64())).to_pylist() if len(pos) else []
    classes = info.class_names
    names = kind_of(info).review_names
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "label-studio":
        tasks = []
        for r in picked:
            key, value = _item(r, info)
            given, suggested = names(r, classes)
            tasks.append(
                {
                    "data": {
                        key: value,
                        "labelq_id": r[S.ID],
                        "labelq_dataset": version.name,
                        "labelq_version": version.tag,
                        "given_label": " | ".join(given),
                        "suggestion": " | ".join(suggested),
                        "issue_kind": r[S.ISSUE_KIND],
                        "label_score": r[S.LABEL_SCORE],
                        "labelq_sample": sample["id"] if sample else None,
                    },
                    "predictions": [
                        {
                            "model_version": f"labelq {version.tag}",
                            "score": 1.0 - r[S.LABEL_SCORE],
                            "result": [kind_of(info).review_prediction(suggested)],
                        }
                    ],
                }
            )
        atomic_write_text(path, json.dumps(tasks, indent=1))
        atomic_write_text(path.with_name(path.name + ".label_config.xml"), label_config(info))
    else:
        images = path.with_name(path.stem + "_images")
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for r in picked:
            key, value = _item(r, info)
            if key == "image":
                images.mkdir(exist_ok=True)
                target = images / f"{r[S.ID]}.png"
                target.write_bytes(base64.b64decode(value.split(",", 1)[1]))
                value = str(target.relative_to(path.parent))
            given, suggested = names(r, classes)
            w.writerow(
                {
                    "labelq_dataset": version.name,
                    "labelq_version": version.tag,
                    "id": r[S.ID],
                    "given_label": " | ".join(given),
                    "suggestion": " | ".join(suggested),
                    "issue_kind": r[S.ISSUE_KIND],
                    "label_score": f"{r[S.LABEL_SCORE]:.6f}",
                    "item": value,
                    "review_labels": "",
                    "reviewer": "",
                    "reviewed_at": "",
                }
            )
        atomic_write_text(path, buf.getvalue())
    log.info("wrote %d rows to review to %s", len(picked), path)
    return path, len(picked)


@dataclass
class Reviews:
    """Reviews read from a file, checked against the dataset: one entry per reviewed row."""

    name: str
    version: str  # the version the review was exported from
    path: str
    fmt: str
    ids: list[str]
    labels: list[list]  # class indices ([] = none of the classes fits), or a value (``[x]``: a number a row)
    reviewer: list[str]
    reviewed_at: list[dt.datetime]
    skipped: int  # tasks with no usable answer
    comments: list[dict] = field(default_factory=list)  # the review app's: {"id", "reviewer", "at", "text"}
    guidelines: list[str] = field(default_factory=list)  # the review app's: sha256 of the guidelines read
    adjudicated: int = 0  # the review app's: rows a lead settled

    @property
    def n(self) -> int:
        return len(self.ids)


@dataclass
class ReviewResult:
    version: Version
    parent: Version
    n_reviews: int
    changed: int


def _parse_time(value: str | None, where: str) -> dt.datetime:
    if not value:
        return dt.datetime.now(dt.UTC)
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"{where}: reviewed_at {value!r} is not an ISO 8601 time", "write times like 2026-11-22T14:05:00Z, or leave the cell empty") from exc
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _read_label_studio(path: Path) -> tuple[list[dict], int]:
    try:
        tasks = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not a Label Studio JSON export: {exc}", "export the project from Label Studio as JSON") from exc
    if not isinstance(tasks, list):
        raise InputError(f"{path} is not a Label Studio JSON export (expected a list of tasks)", "export the project from Label Studio as JSON (not JSON-MIN)")
    out, skipped = [], 0
    for i, task in enumerate(tasks):
        data = task.get("data", {}) if isinstance(task, dict) else {}
        if "labelq_id" not in data:
            raise InputError(
                f"{path}: task {i} has no data.labelq_id", "import into Label Studio the tasks written by `labelq review export`, then export them"
            )
        done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled") and a.get("result")]
        if not done:
            skipped += 1
            continue
        ann = max(done, key=lambda a: a.get("updated_at") or a.get("created_at") or "")
        choices = [c for res in ann["result"] if res.get("type") == "choices" for c in res.get("value", {}).get("choices", [])]
        choices += [str(res["value"]["number"]) for res in ann["result"] if res.get("type") == "number" and "number" in res.get("value", {})]
        who = ann.get("completed_by")
        reviewer = who.get("email") or str(who.get("id")) if isinstance(who, dict) else str(who) if who is not None else ""
        out.append(
            {
                "id": str(data["labelq_id"]),
                "dataset": data.get("labelq_dataset"),
                "version": data.get("labelq_version"),
                "choices": choices,
                "reviewer": reviewer,
                "reviewed_at": ann.get("updated_at") or ann.get("created_at"),
                "where": f"task {i} (id {data['labelq_id']})",
            }
        )
    return out, skipped


def _read_csv(path: Path) -> tuple[list[dict], int]:
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {"id", "labelq_dataset", "labelq_version", "review_labels", "reviewer"} - set(reader.fieldnames or [])
            if missing:
                raise InputError(
                    f"{path} lacks the columns {sorted(missing)}", "fill in the CSV written by `labelq review export --format csv` and keep its columns"
                )
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path} is not a readable CSV: {exc}", "save the review sheet as UTF-8 CSV") from exc
    out, skipped = [], 0
    for i, r in enumerate(rows, start=2):
        cell = (r.get("review_labels") or "").strip()
        if not cell:
            skipped += 1
            continue
        choices = [c.strip() for c in cell.split("|") if c.strip()]
        out.append(
            {
                "id": r["id"],
                "dataset": r["labelq_dataset"],
                "version": r["labelq_version"],
                "choices": choices,
                "reviewer": (r.get("reviewer") or "").strip(),
                "reviewed_at": (r.get("reviewed_at") or "").strip(),
                "where": f"line {i} (id {r['id']})",
            }
        )
    return out, skipped


def _read_app_log(path: Path) -> tuple[list[dict], int]:
    """The settled rows of the review app's log (``reviewlog``); disagreements count as skipped."""
    from .reviewlog import ReviewLog, answers, settle

    entries = ReviewLog(path).entries()
    settled, disagreements = settle(answers(entries))
    meta = entries[0] if entries else {}
    out = [
        {
            "id": row_id,
            "dataset": meta.get("dataset"),
            "version": meta.get("version"),
            "choices": s["labels"] or [NONE_OF_THESE],
            "reviewer": ", ".join(s["reviewers"]),
            "reviewed_at": s["at"],
            "adjudicated_by": s.get("adjudicated_by"),
            "where": f"{path.name}: row {row_id}",
        }
        for row_id, s in settled.items()
    ]
    return out, len(disagreements)


def read_reviews(store: Store, name: str, path: str | Path, fmt: str | None = None) -> Reviews:
    """Read and check a review file against ``name``'s latest version. Raises ``InputError`` naming every problem."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"review file {path} does not exist", "pass the file exported from Label Studio or the filled CSV")
    fmt = fmt or {".csv": "csv", ".jsonl": "app"}.get(path.suffix.lower(), "label-studio")
    readers = {"label-studio": _read_label_studio, "csv": _read_csv, "app": _read_app_log}
    if fmt not in readers:
        raise InputError(f"unknown review format {fmt!r}", f"use one of {list(readers)}")
    entries, skipped = readers[fmt](path)
    if not entries:
        raise InputError(f"{path} holds no answered reviews ({skipped} rows without an answer)", "review some rows first; nothing was changed")
    latest = store.version(name)
    check_supports(latest, "review", "the review loop")
    datasets = {e["dataset"] for e in entries}
    if datasets != {name}:
        raise InputError(f"{path} reviews dataset {sorted(map(str, datasets))}, not {name!r}", "import it into the dataset it was exported from")
    versions = {e["version"] for e in entries}
    if versions != {latest.tag}:
        raise InputError(
            f"{path} is a review of {sorted(map(str, versions))} but the latest version of {name!r} is {latest.tag}; rows and suggestions may have changed since",
            f"export a new review from {latest.tag} (`labelq review export {name}`) and carry the answers over; nothing was changed",
        )
    rows = latest.read(columns=[S.ID])
    known = set(rows[S.ID].to_pylist())
    classes = S.info_of(rows).class_names
    kind = kind_of(latest.manifest())
    problems, seen, parsed = [], set(), []
    for e in entries:
        if e["id"] not in known:
            problems.append(f"{e['where']}: unknown id {e['id']!r}")
        if e["id"] in seen:
            problems.append(f"{e['where']}: id {e['id']!r} is reviewed twice")
        seen.add(e["id"])
        answer, problem = kind.parse_answer(e["choices"], classes)
        parsed.append(answer)
        if problem:
            problems.append(f"{e['where']}: {problem} of {name!r}")
        if not e["reviewer"]:
            problems.append(f"{e['where']}: no reviewer")
        _parse_time(e["reviewed_at"], e["where"])
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise InputError(f"{path} has {len(problems)} problems: {shown}", f"fix the file ({kind.answer_hint(classes)}); nothing was changed")
    return Reviews(
        name,
        latest.tag,
        str(path),
        fmt,
        [e["id"] for e in entries],
        parsed,
        [e["reviewer"] for e in entries],
        [_parse_time(e["reviewed_at"], e["where"]) for e in entries],
        skipped,
        *(_app_extras(path, entries) if fmt == "app" else ()),
    )


def _app_extras(path: Path, settled: list[dict]) -> tuple[list[dict], list[str], int]:
    """The review app's comments, the guidelines its answers were given under, and the rows a lead settled."""
    from .reviewlog import ReviewLog, comments

    log_entries = ReviewLog(path).entries()
    notes = [{"id": row_id, **c} for row_id, cs in comments(log_entries).items() for c in cs]
    guides = sorted({e["guidelines"] for e in log_entries if e.get("guidelines")})
    return notes, guides, sum(1 for e in settled if e.get("adjudicated_by"))


@step("read-review")
def read_step(name: str, path: str, store: str | None = None, fmt: str | None = None) -> Reviews:
    return read_reviews(Store(store), name, path, fmt)


@step("apply-review")
def apply_step(reviews: Reviews, store: str | None = None) -> tuple[pa.Table, dict, Version]:
    """The reviewed version's rows with the reviews applied, the manifest's changes (``review`` section, counts), and that version."""
    parent = Store(store).version(reviews.name, reviews.version)
    rows = parent.read()
    info = S.info_of(rows)
    k = len(info.class_names)
    probs = pred_probs_array(parent.read_table("pred_probs"))
    pos = {v: i for i, v in enumerate(rows[S.ID].to_pylist())}
    kind_of_label = kind_of(info)
    answered = {pos[rid]: chosen for rid, chosen in zip(reviews.ids, reviews.labels)}
    values, changed = kind_of_label.apply_reviews(rows, answered, probs)
    kind, corrected, labels, soft = (values[c] for c in (S.ISSUE_KIND, S.CORRECTED_LABEL, S.LABELS, S.SOFT_LABEL))
    source, reviewer, reviewed_at = S.pylists(rows, S.LABEL_SOURCE, S.REVIEWER, S.REVIEWED_AT)
    for rid, who, when in zip(reviews.ids, reviews.reviewer, reviews.reviewed_at):
        i = pos[rid]
        source[i], reviewer[i], reviewed_at[i] = "review", who, when
    new = {
        S.ISSUE_KIND: pa.array(kind, pa.string()),
        S.CORRECTED_LABEL: pa.array(corrected, rows.schema.field(S.CORRECTED_LABEL).type),
        S.LABELS: pa.array(labels, pa.list_(pa.int64())),
        S.SOFT_LABEL: pa.array(soft, pa.list_(pa.float32(), k)),
        S.LABEL_SOURCE: pa.array(source, pa.string()),
        S.REVIEWER: pa.array(reviewer, pa.string()),
        S.REVIEWED_AT: pa.array(reviewed_at, pa.timestamp("us", tz="UTC")),
    }
    out = S.with_info(S.replace_columns(rows, new), info)
    n_corrected = len(out[S.CORRECTED_LABEL].drop_null())
    changes = {
        "review": ReviewSection(
            file=reviews.path,
            file_sha256=file_sha256(Path(reviews.path)),
            format=reviews.fmt,
            from_version=parent.tag,
            n_reviews=reviews.n,
            skipped=reviews.skipped,
            changed=changed,
            reviewers=sorted(set(reviews.reviewer)),
            adjudicated=reviews.adjudicated if reviews.fmt == "app" else None,
            comments=len(reviews.comments) if reviews.fmt == "app" else None,
            guidelines=reviews.guidelines or None,
        ),
        "n_corrected": n_corrected,
        "corrections": S.correction_counts(out),
    }
    return out, changes, parent


@step("publish")
def publish_step(reviews: Reviews, parent: Version, table: pa.Table, changes: dict, store: str | None = None, run: dict | None = None) -> Version:
    from .run import publish

    tables = {"review_comments": comments_table(parent, reviews)} if reviews.comments else None
    return publish(Store(store), parent, table, changes, run, require_latest=True, tables=tables)


def comments_table(parent: Version, reviews: Reviews) -> pa.Table:
    """The reviewers' comments: the parent's (from earlier reviews) and this review's, with the version reviewed."""
    new = pa.Table.from_pylist(
        [{"id": c["id"], "version": reviews.version, "reviewer": c["reviewer"], "at": c["at"], "text": c["text"]} for c in reviews.comments],
        schema=COMMENTS_SCHEMA,
    )
    if (parent.path / "review_comments.parquet").exists():
        return pa.concat_tables([parent.read_table("review_comments").cast(COMMENTS_SCHEMA), new])
    return new


COMMENTS_SCHEMA = pa.schema([("id", pa.string()), ("version", pa.string()), ("reviewer", pa.string()), ("at", pa.string()), ("text", pa.string())])


def apply_reviews(name: str, path: str | Path, store: str | None = None, fmt: str | None = None) -> ReviewResult:
    """Read, check and apply a review file in this process (no Prefect); publishes a new version."""
    return review_job(name, str(path), store, fmt, InProcess())


def review_job(name: str, path: str, store: str | None, fmt: str | None, runner: Runner) -> ReviewResult:
    """Applying a review file, described once: ``runner`` decides where each step runs."""
    from .run import report_step

    reviews = runner.run(read_step, name, path, store, fmt)
    table, changes, parent = runner.run(apply_step, reviews, store)
    version = runner.run(publish_step, reviews, parent, table, changes, store, runner.run_info())
    runner.run(report_step, version)
    return ReviewResult(version, parent, reviews.n, changes["review"].changed)
