"""The audit report of a published version: a self-contained HTML page and a JSON summary.

Everything comes from the version itself (rows, manifest), so a report can be rebuilt at any time.
"""

from __future__ import annotations

import dataclasses
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import schema as S
from ..detect.ensemble import describe as describe_ensemble
from ..io import atomic_write_text
from ..labelkind import kind_of
from ..manifest import Manifest, RelabelSection, Section
from ..multilabel import class_counts
from . import plots

SNIPPET = 300
SETS_SHOWN = 20  # near-duplicate sets in the report, leaks and conflicts first
MEMBERS_SHOWN = 4  # rows of a set shown side by side
OUTLIERS_SHOWN = 20  # outliers in the report, highest score first


def label_namer(manifest: Manifest):
    """``name(label)``: a label's name for people, as the version's kind of label gives it (a tag list: ``"a, b"``; None stays None)."""
    return kind_of(manifest).namer(manifest.class_names)


def percent(v: float | None) -> str:
    """A rate as the report's tables show it, ``"12.34%"`` (None: empty)."""
    return "" if v is None else f"{100 * v:.2f}%"


@dataclass(frozen=True)
class AuditSummary(Section):
    """The report's numbers (``reports/<tag>.json``), built by ``audit_summary`` and read by attribute by the
    page; the JSON keeps its keys (unknown ones go to ``extra`` and back). ``per_class``, ``top_issues`` and
    the sections are JSON objects as written."""

    dataset: str | None = None
    version: int | None = None
    created_at: str | None = None
    source: str = ""
    rows: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    classes: int = 0
    n_label_issues: int = 0
    issue_rate: float = 0.0
    num_label_issues_estimate: int | None = None
    n_corrected: int = 0
    model: str | None = None
    n_folds: int | None = None
    seed: int | None = None
    filter_by: str | None = None
    out_of_sample_accuracy: float | None = None
    judges: dict | None = None
    reliability: dict | None = None
    ensemble: dict | None = None  # --detector ensemble: the candidates measured on planted errors, the choice
    margin: str | None = None  # --detector margin: what it ranked by
    crowd: dict | None = None  # several annotators a row: the manifest's figures and the annotators, lowest quality first
    per_class: list[dict] = field(default_factory=list)
    multi_label: bool = False
    label_kind: str = "single"
    top_issues: list[dict] = field(default_factory=list)
    relabel: dict | None = None
    near_duplicates: dict | None = None
    outliers: dict | None = None
    class_health: dict | None = None
    history: list[dict] | None = None  # the audit history up to this version (``write_audit_report``)
    extra: dict[str, Any] = field(default_factory=dict)


def audit_summary(rows: pa.Table, manifest: Manifest, top: int = 50, joint: np.ndarray | None = None) -> AuditSummary:
    """Numbers of the report: counts, rates per class, noise estimates, the top ``top`` issues, and the
    class health (``labelq.detect.class_health``; from ``joint``, confident learning's estimate, when the model is reliable).
    The kind of label adds its own figures per class and columns of the top issues (tags: the tags flagged
    missing and extra), and gives the class health where it applies (one class a row)."""
    names = manifest.class_names
    kind = kind_of(manifest)
    name = kind.namer(names)
    flagged = rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)
    k = len(names)
    labels = kind.labels(rows)
    extra = kind.per_class_extra(rows, k)
    n_per = class_counts(kind.class_codes(labels), k)
    f_per = class_counts(kind.class_codes(labels), k, flagged)
    est = np.asarray(manifest.audit.class_error_rate or np.zeros(k))
    order = pc.sort_indices(rows.filter(rows[S.IS_LABEL_ISSUE]), sort_keys=[(S.ISSUE_RANK, "ascending")])
    top_rows = rows.filter(rows[S.IS_LABEL_ISSUE]).take(order).slice(0, top)
    splits = pc.value_counts(rows[S.SPLIT]).to_pylist()
    return AuditSummary(
        dataset=manifest.name,
        version=manifest.version,
        created_at=manifest.created_at,
        source=manifest.source or "",
        rows=rows.num_rows,
        splits={d["values"]: d["counts"] for d in splits},
        classes=k,
        n_label_issues=int(flagged.sum()),
        issue_rate=float(flagged.mean()) if len(flagged) else 0.0,
        num_label_issues_estimate=manifest.audit.num_label_issues_estimate,
        n_corrected=manifest.n_corrected or 0,
        model=manifest.audit.model,
        n_folds=manifest.audit.n_folds,
        seed=manifest.audit.seed,
        filter_by=manifest.audit.filter_by,
        out_of_sample_accuracy=manifest.audit.out_of_sample_accuracy,
        judges=manifest.judges.to_json() if manifest.judges else None,
        reliability=manifest.audit.reliability,
        ensemble=manifest.audit.ensemble,
        margin=manifest.audit.margin,
        crowd=manifest.audit.crowd,
        per_class=[
            {
                "label": i,
                "class_name": names[i],
                "rows": int(n_per[i]),
                "flagged": int(f_per[i]),
                "flagged_rate": float(f_per[i] / n_per[i]) if n_per[i] else 0.0,
                "estimated_error_rate": float(est[i]) if len(est) == k and manifest.audit.reliable else None,
                **extra[i],
            }
            for i in range(k)
        ],
        multi_label=bool(manifest.multi_label),
        label_kind=kind.name,
        top_issues=[
            {
                "rank": r[S.ISSUE_RANK],
                "id": r[S.ID],
                "given_label": name(r[S.LABEL]),
                "suggested_label": name(r[S.SUGGESTED_LABEL]),
                "label_score": round(r[S.LABEL_SCORE], 6),
                "split": r[S.SPLIT],
                "issue_kind": r[S.ISSUE_KIND],
                "corrected_label": name(r[S.CORRECTED_LABEL]),
                **{c: name(r[c]) for c in kind.issue_columns},
            }
            for r in top_rows.select(
                [
                    S.ISSUE_RANK,
                    S.ID,
                    S.LABEL,
                    S.SUGGESTED_LABEL,
                    S.LABEL_SCORE,
                    S.SPLIT,
                    S.ISSUE_KIND,
                    S.CORRECTED_LABEL,
                    *kind.issue_columns,
                ]
            ).to_pylist()
        ],
        relabel=relabel_summary(rows, manifest),
        near_duplicates=near_duplicate_summary(rows, manifest),
        outliers=outlier_summary(rows, manifest),
        class_health=kind.class_health(labels, joint if manifest.audit.reliable else None, names),
    )


def near_duplicate_summary(rows: pa.Table, manifest: Manifest) -> dict | None:
    """The near-duplicate check's counts and its first ``SETS_SHOWN`` sets (leaks across splits, then
    conflicting labels, then the largest), each with its rows' ids, splits and classes; None when not checked."""
    info = manifest.audit.near_duplicates
    if info is None or S.IS_NEAR_DUPLICATE not in rows.column_names:
        return None
    name = label_namer(manifest)
    members = rows.filter(pc.fill_null(rows[S.IS_NEAR_DUPLICATE], False)).select([S.ID, S.SPLIT, S.LABEL, S.NEAR_DUPLICATE_SET]).to_pylist()
    sets: dict[tuple, list[dict]] = {}
    for r in members:
        sets.setdefault(tuple(r[S.NEAR_DUPLICATE_SET]), []).append(r)
    shown = []
    for rs in sets.values():
        splits, labels = {r[S.SPLIT] for r in rs}, {name(r[S.LABEL]) for r in rs}
        shown.append(
            {
                "n_rows": len(rs),
                "leak": len(splits) > 1,
                "conflict": len(labels) > 1,
                "rows": [{"id": r[S.ID], "split": r[S.SPLIT], "label": name(r[S.LABEL])} for r in sorted(rs, key=lambda r: r[S.ID])[:MEMBERS_SHOWN]],
            }
        )
    shown.sort(key=lambda s: (not s["leak"], not s["conflict"], -s["n_rows"], s["rows"][0]["id"]))
    return {**info.to_json(), "sets": shown[:SETS_SHOWN]}


def outlier_summary(rows: pa.Table, manifest: Manifest) -> dict | None:
    """The outlier rule, its count, and the ``OUTLIERS_SHOWN`` rows of highest ``outlier_score``; None when not checked."""
    info = manifest.audit.near_duplicates
    if info is None or S.OUTLIER_SCORE not in rows.column_names or pc.all(pc.is_null(rows[S.OUTLIER_SCORE])).as_py():
        return None
    name = label_namer(manifest)
    top = rows.filter(pc.fill_null(rows[S.IS_OUTLIER], False)).select([S.ID, S.SPLIT, S.LABEL, S.OUTLIER_SCORE])
    top = top.take(pc.sort_indices(top, [(S.OUTLIER_SCORE, "descending"), (S.ID, "ascending")])[:OUTLIERS_SHOWN])
    return {
        "outlier_rows": info.outlier_rows or 0,
        "outlier_iqr": info.outlier_iqr,
        "outlier_threshold": info.outlier_threshold,
        "space": info.space,
        "rows": [{"id": r[S.ID], "split": r[S.SPLIT], "label": name(r[S.LABEL]), "score": r[S.OUTLIER_SCORE]} for r in top.to_pylist()],
    }


def shown_ids(summary: AuditSummary) -> list[str]:
    """The rows whose inputs the report shows: the top issues, the near-duplicate sets' shown rows and the top outliers."""
    dup = summary.near_duplicates or {}
    outliers = summary.outliers or {}
    return [t["id"] for t in summary.top_issues] + [r["id"] for s in dup.get("sets", []) for r in s["rows"]] + [r["id"] for r in outliers.get("rows", [])]


def relabel_summary(rows: pa.Table, manifest: Manifest) -> dict | None:
    """Issue kinds, where corrections came from, label-set coverage and sizes, reviews; None before re-labeling."""
    if S.LABEL_SOURCE not in rows.column_names:
        return None
    kinds = {d["values"]: d["counts"] for d in pc.value_counts(rows[S.ISSUE_KIND]).to_pylist()}
    sources = {str(d["values"]): d["counts"] for d in pc.value_counts(rows[S.LABEL_SOURCE]).to_pylist() if d["values"] is not None}
    sizes = pc.list_value_length(rows[S.LABELS]).drop_null().to_numpy()
    r = manifest.relabel or RelabelSection()
    return {
        "kinds": kinds,
        "label_source": sources,
        "corrections": S.correction_counts(rows),
        "coverage_target": r.coverage_target,
        "coverage_measured": r.coverage_measured,
        "mean_set_size": float(sizes.mean()) if len(sizes) else None,
        "set_size_counts": {int(k): int(v) for k, v in zip(*np.unique(sizes, return_counts=True))},
        "review": manifest.review.to_json() if manifest.review else None,
        "guarantee": r.guarantee,
        "corrections_guaranteed": r.guarantee is not None,
    }


def crowd_line(crowd: dict) -> str:
    """The annotators in one line: how many, agreement, and where CROWDLAB's consensus departs from the majority."""
    alpha = "n/a" if crowd["krippendorff_alpha"] is None else f"{crowd['krippendorff_alpha']:.3f}"
    fleiss = f", Fleiss' kappa {crowd['fleiss_kappa']:.3f}" if crowd.get("fleiss_kappa") is not None else ""
    return (
        f"{crowd['annotators']:,} annotators gave {crowd['annotations']:,} labels; Krippendorff's alpha {alpha}{fleiss} "
        f"(on {crowd['alpha_rows']:,} rows with several labels); CROWDLAB's consensus differs from the majority on "
        f"{crowd['consensus_differs_from_majority']:,} rows, Dawid-Skene's on {crowd['dawid_skene_differs_from_majority']:,}"
    )


def _crowd_html(crowd: dict | None) -> str:
    if not crowd:
        return ""
    e = html.escape
    cols = ("annotator", "n_labeled", "quality", "agreement_with_consensus", "weight", "dawid_skene_accuracy")
    fmt = lambda v: "" if v is None else (f"{v:.3f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else e(str(v)))  # noqa: E731
    body = "".join("<tr>" + "".join(f"<td>{fmt(a.get(c))}</td>" for c in cols) + "</tr>" for a in crowd.get("annotator_table", []))
    return (
        f"<h2>Annotators</h2><p>{e(crowd_line(crowd))}.</p><p class=\"note\">Quality: CROWDLAB's score of an annotator (its labels' agreement with "
        "the consensus and the model, weighed as CROWDLAB weighs them), lowest first. Weight: how much more often than a constant guess the annotator "
        "agrees with the others. The consensus, its quality and ActiveLab's score for each row are in the catalog's <code>consensus</code> view "
        "(low active_score: one more label helps most).</p>"
        + (f'<img class="fig" src="{plots.annotator_quality(crowd["annotator_table"])}" alt="annotator quality">' if crowd.get("annotator_table") else "")
        + f"<table><tr>{''.join(f'<th>{c.replace(chr(95), chr(32))}</th>' for c in cols)}</tr>{body}</table>"
    )


def fix_rule_summary(guarantee: dict) -> str:
    """The sentence that states a --target-precision guarantee (``labelq.precision.FixRule.summary``)."""
    from ..precision import FixRule

    return FixRule(**{**guarantee, "grid": tuple(guarantee["grid"])}).summary()


def _preview_cell(rows: pa.Table, manifest: Manifest) -> list[str]:
    """HTML for each row's payload: a thumbnail for images, an escaped snippet for text."""
    modality, inputs = manifest.modality, manifest.inputs or []
    if modality == "image":
        out = []
        for v in rows[inputs[0]].to_pylist():
            raw = v.get("bytes") if isinstance(v, dict) else v
            out.append(f'<img src="{plots.thumbnail(raw)}" alt="image">' if raw else "")
        return out
    if modality == "text":
        out = []
        for v in rows[inputs[0]].to_pylist():
            text = " ".join(str(v or "").split())
            out.append(html.escape(text[:SNIPPET] + ("…" if len(text) > SNIPPET else "")))
        return out
    return [html.escape(json.dumps({c: r[c] for c in inputs[:8]}, default=str)) for r in rows.select(inputs).to_pylist()]


def render_audit_html(
    rows: pa.Table,
    manifest: Manifest,
    summary: AuditSummary,
    top_rows: pa.Table | None = None,
    joint: np.ndarray | None = None,
    previews: list[str] | None = None,
    kind_figures: list[str] | None = None,
) -> str:
    """The report page. ``top_rows``: the top issues with their inputs, when ``rows`` was read without them;
    ``joint``: confident learning's estimated joint (``Version.noise``), for the noise heatmap; ``previews``: the
    kind of label's HTML of each of ``top_rows`` (``LabelKind.preview``: a token in its sentence), else the modality's;
    ``kind_figures``: the kind of label's own figures (``LabelKind.figures``: residuals, tag errors)."""
    names = manifest.class_names
    e = html.escape
    scores = rows[S.LABEL_SCORE].to_numpy()
    flagged = rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)
    figures = [plots.score_histogram(scores, flagged)]
    per = summary.per_class
    kind = kind_of(manifest)
    figures.insert(0, kind.rates_figure(names, per, summary.rows))
    figures[1:1] = kind_figures or []
    if joint is not None:
        figures.insert(0, plots.noise_heatmap(joint, names, rows.num_rows))
    if len(summary.history or []) > 1:
        figures.append(plots.history_trend(summary.history))
    if top_rows is None:
        top_rows = rows.filter(pc.is_in(rows[S.ID], pa.array(shown_ids(summary), pa.string())))
    by_id = dict(zip(top_rows[S.ID].to_pylist(), previews if previews is not None else _preview_cell(top_rows, manifest))) if manifest.inputs else {}
    acc = summary.out_of_sample_accuracy
    rel = manifest.audit.reliability or {}
    noise = "" if manifest.audit.reliable else " (not meaningful: see the warning)"
    facts = [
        ("rows", f"{summary.rows:,}"),
        kind.label_fact(names),
        ("flagged label issues", f"{summary.n_label_issues:,} ({100 * summary.issue_rate:.2f}%)"),
        (f"estimated label issues ({kind.estimate_by})", f"{summary.num_label_issues_estimate}{noise}"),
        (
            ("corrected", S.describe_corrections(summary.relabel["corrections"]))
            if summary.relabel and "corrections" in summary.relabel
            else ("auto-corrected (--auto-fix)", summary.n_corrected)
        ),
        ("model", f"{summary.model} ({summary.n_folds} folds, seed {summary.seed})" if summary.n_folds else summary.model),
        (f"out-of-sample {kind.accuracy_label} vs given labels", f"{acc:.4f}" if acc is not None else "n/a"),
        *([(f"{kind.prior_label} (a model that learned nothing)", f"{rel['majority_share']:.4f}")] if "majority_share" in rel else []),
        *([("filter", summary.filter_by)] if kind.filtered else []),
        *([("detector (ensemble)", describe_ensemble(summary.ensemble))] if summary.ensemble else []),
        *([("detector (margin)", f"ranked by the {summary.margin}")] if summary.margin else []),
        ("source", summary.source),
    ]
    fact_rows = "".join(f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in facts)
    warning_html = ""
    if not manifest.audit.reliable:
        helps = "".join(f"<li>{e(x)}</li>" for x in rel["suggestions"])
        warning_html = f'<div class="warn" id="unreliable"><strong>The flags mean nothing here.</strong> {e(rel["warning"][0].upper() + rel["warning"][1:])}<br>What would help:<ul>{helps}</ul></div>'

    class_title, class_head, class_rows = kind.class_table(per, summary.class_health)
    health_html = _class_health_html(summary.class_health)
    show_inputs = bool(manifest.inputs)  # labels + given pred_probs: there is no example to show
    tag_cols = kind.issue_columns
    issue_rows = "".join(
        f"<tr><td>{t['rank']}</td><td><code>{e(t['id'])}</code></td>"
        + (f"<td>{by_id.get(t['id'], '')}</td>" if show_inputs else "")
        + f"<td>{e(t['given_label'])}</td>"
        + "".join(f"<td><b>{e(t[c])}</b></td>" for c in tag_cols)
        + f"<td><b>{e(t['suggested_label'])}</b></td><td>{t['label_score']:.4f}</td><td>{e(t['issue_kind'])}</td><td>{e(t['corrected_label'] or '')}</td></tr>"
        for t in summary.top_issues
    )
    relabel_html = ""
    if summary.relabel:
        r = summary.relabel
        cov = "n/a" if r["coverage_measured"] is None else f"{r['coverage_measured']:.3f}"
        facts_r = [
            ("issue kinds", ", ".join(f"{k}: {v:,}" for k, v in sorted(r["kinds"].items()))),
            ("corrections by source", ", ".join(f"{k}: {v:,}" for k, v in sorted(r["label_source"].items())) or "none"),
        ]
        if r["mean_set_size"] is not None:  # kinds with label sets (not a regression target)
            facts_r.append(
                ("label sets", f"target coverage {r['coverage_target']}, measured {cov}; mean size {r['mean_set_size']:.2f}; sizes {r['set_size_counts']}")
            )
        if r.get("guarantee"):
            facts_r.append(("corrections", fix_rule_summary(r["guarantee"])))
        elif r["label_source"].get("relabel"):
            facts_r.append(
                (
                    "corrections",
                    "made without a precision guarantee (relabel without --target-precision): on crowd-verified test sets such corrections were 7-33% right",
                )
            )
        if r.get("review"):
            rv = r["review"]
            facts_r.append(("review", f"{rv['n_reviews']:,} rows by {', '.join(rv['reviewers'])} from {rv['from_version']}; {rv['changed']:,} labels changed"))
        relabel_html = "<h2>Re-labeling</h2><table>" + "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in facts_r) + "</table>"
    imgs = "".join(f'<img class="fig" src="{uri}" alt="figure">' for uri in figures)
    judges_html = ""
    if summary.judges:
        j = summary.judges
        info = j.get("annotator_information") or {}
        calibration = (j.get("calibration") or {}).get("judges", {})
        cols = ("judge", "model", "examples", "answered", "missing", "abstained", "cache_hits", "planted_asked", "prompt_tokens", "seconds", "cost")
        head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in cols) + "<th>planted AUROC</th><th>information</th>"
        body = "".join(
            "<tr>"
            + "".join(f"<td>{e(str(st.get(c, '')))}</td>" for c in cols)
            + f"<td>{e(str(calibration.get(st['judge'], {}).get('planted_auroc', '')))}</td><td>{info.get(st['judge'], float('nan')):.3f}</td></tr>"
            for st in j.get("stats") or []
        )
        planted = (j.get("calibration") or {}).get("planted_rows")
        judges_html = (
            f'<h2>LLM judges</h2><p class="note">{j.get("judged_rows", 0):,} rows judged; aggregation {e(str(j.get("aggregation")))}'
            + (f", weighed on {planted:,} rows asked again under a planted wrong label" if planted else "")
            + ". Planted AUROC: how well a judge told the planted labels from the given ones, within each class (0.5 = not at all). "
            "Information: how far a judge's answers move the odds that a label is wrong (0 = the judge carries no weight).</p>"
            f"<table><tr>{head}</tr>{body}</table>"
        )
    duplicates_html = _duplicates_html(summary.near_duplicates, by_id) + _outliers_html(summary.outliers, by_id)
    crowd_html = _crowd_html(summary.crowd)
    title = f"labelq audit: {manifest.name} v{manifest.version:04d}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} th, td {{ border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }}
td img {{ image-rendering: pixelated; }} .fig {{ max-width: 100%; margin: 0.5em 0; display: block; }}
code {{ font-size: 0.9em; }} .note {{ color: #666; font-size: 0.9em; }}
.warn {{ background: #fdecea; border-left: 4px solid #c62828; padding: 0.6em 1em; margin: 1em 0; }}
</style></head><body>
<h1>{e(title)}</h1>
{warning_html}
<p class="note">Created {e(summary.created_at)}. {kind.legend}</p>
<h2>Summary</h2><table>{fact_rows}</table>
{crowd_html}
{judges_html}
{relabel_html}
<h2>Figures</h2>{imgs}
<h2>{class_title}</h2><table id="per-class"><tr>{class_head}</tr>{class_rows}</table>
{health_html}
<h2>Top {len(summary.top_issues)} suspected label errors</h2>
<table><tr><th>rank</th><th>id</th>{"<th>example</th>" if show_inputs else ""}<th>given</th>{"".join(f"<th>{c.replace('_', ' ')}</th>" for c in tag_cols)}<th>suggested</th><th>score</th><th>kind</th><th>corrected</th></tr>{issue_rows}</table>
{duplicates_html}
</body></html>
"""


def _class_health_html(health: dict | None) -> str:
    """Imbalance and overlapping classes under the per-class table (``labelq.detect.class_health``)."""
    if not health:
        return ""
    e = html.escape
    notes = [f"A class is imbalanced below {100 * health['imbalance_threshold']:.2f}% of the rows (0.1 / number of classes, cleanlab Datalab's rule)"]
    notes.append("imbalanced: " + (", ".join(e(c) for c in health["imbalanced_classes"]) or "none"))
    if "overall_label_health" in health:
        notes.append(f"overall label health {health['overall_label_health']:.3f} (cleanlab: 1 - the estimated share of wrong labels)")
    text = f'<p class="note">{"; ".join(notes)}.</p>'
    pairs = health.get("overlapping_classes") or []
    if pairs:
        body = "".join(
            f"<tr><td>{e(str(p['class_a']))}</td><td>{e(str(p['class_b']))}</td><td>{p['overlapping_rows']:,}</td><td>{p['joint_probability']:.4f}</td></tr>"
            for p in pairs
        )
        text += (
            '<h3>Overlapping classes</h3><p class="note">Pairs whose rows are most often given one label when the other is true, both ways '
            "(confident learning's joint): candidates to merge, or to describe better to annotators.</p>"
            f'<table id="overlapping-classes"><tr><th>class</th><th>class</th><th>estimated rows mixed up</th><th>joint probability</th></tr>{body}</table>'
        )
    return text


def _duplicates_html(dup: dict | None, by_id: dict[str, str]) -> str:
    """The near-duplicate section: the counts, then each shown set as one table row, its rows side by side."""
    if dup is None:
        return ""
    e = html.escape
    facts = (
        f"{dup['near_duplicate_rows']:,} rows in {dup['near_duplicate_sets']:,} sets of exact or near duplicates "
        f"({dup['exact_duplicate_rows']:,} rows with an exact copy); {dup['leaking_rows']:,} rows in sets that span splits (leaks), "
        f"{dup['conflicting_rows']:,} in sets whose rows carry different labels. Feature space {e(str(dup['space']))} ({dup['dims']} dims); "
        f"near: within {dup['near_duplicate_radius']} x the median nearest-neighbour distance ({dup['near_duplicate_distance']:.4f})."
    )
    body = "".join(
        "<tr>"
        + f"<td>{s['n_rows']}</td><td>{'leak' if s['leak'] else ''}{' ' if s['leak'] and s['conflict'] else ''}{'conflict' if s['conflict'] else ''}</td>"
        + "".join(f"<td>{by_id.get(r['id'], '')}<br><code>{e(r['id'])}</code><br>{e(str(r['split']))} · <b>{e(r['label'])}</b></td>" for r in s["rows"])
        + "</tr>"
        for s in dup["sets"]
    )
    table = (
        f'<table id="near-duplicates"><tr><th>rows</th><th>issue</th><th colspan="{MEMBERS_SHOWN}">the set, side by side</th></tr>{body}</table>'
        if body
        else ""
    )
    return f'<h2>Near duplicates</h2><p class="note">{facts}</p>{table}'


def _outliers_html(out: dict | None, by_id: dict[str, str]) -> str:
    """The outlier section: the rule and count, then the rows farthest from their neighbours."""
    if out is None:
        return ""
    e = html.escape
    threshold = f"{out['outlier_threshold']:.3f}" if out["outlier_threshold"] is not None else "none (too few rows)"
    facts = (
        f"{out['outlier_rows']:,} outliers: rows whose distance to their 10th nearest neighbour, over the dataset's median of it (the outlier score), "
        f"exceeds the third quartile by {out['outlier_iqr']} interquartile ranges ({threshold}). Feature space {e(str(out['space']))}."
    )
    body = "".join(
        f"<tr><td>{r['score']:.3f}</td><td><code>{e(r['id'])}</code></td><td>{by_id.get(r['id'], '')}</td><td>{e(str(r['split']))}</td><td>{e(r['label'])}</td></tr>"
        for r in out["rows"]
    )
    table = f'<table id="outliers"><tr><th>outlier score</th><th>id</th><th>example</th><th>split</th><th>label</th></tr>{body}</table>' if body else ""
    return f'<h2>Outliers</h2><p class="note">{facts}</p>{table}'


def write_audit_report(version, top: int = 50) -> tuple[Path, Path]:
    """Write ``reports/<tag>.html`` and ``reports/<tag>.json`` beside the dataset's versions."""
    from ..history import read_history
    from ..store import Store

    manifest = version.manifest()
    payload = version.payload_columns()
    rows = version.read([c for c in version.column_names() if c not in payload])  # images and texts only for the top rows
    noise = version.noise()
    summary = audit_summary(rows, manifest, top, noise[0] if noise else None)
    top_rows = version.payload_rows(shown_ids(summary)) if payload else None
    previews = kind_of(manifest).preview(version, top_rows) if top_rows is not None else None
    kind_figures = kind_of(manifest).figures(version, rows, manifest.class_names)
    store = Store(version.path.parent.parent.parent)
    history = [
        {
            k: getattr(r, k)
            for k in ("finished_at", "version", "flagged_rate", "estimated_error_rate", "estimated_error_rate_lo", "estimated_error_rate_hi", "status")
        }
        for r in read_history(store, version.name)
        if r.version <= version.number
    ]
    summary = dataclasses.replace(summary, history=history)
    if summary.crowd is not None:
        people = sorted(version.read_table("annotators").to_pylist(), key=lambda a: (a["quality"] is None, a["quality"]))
        summary = dataclasses.replace(summary, crowd={**summary.crowd, "annotator_table": people})
    out = version.path.parent / "reports"
    html_path = atomic_write_text(
        out / f"{version.tag}.html", render_audit_html(rows, manifest, summary, top_rows, noise[0] if noise else None, previews, kind_figures)
    )
    json_path = atomic_write_text(out / f"{version.tag}.json", json.dumps(summary.to_json(), indent=2))
    return html_path, json_path
