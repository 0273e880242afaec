"""The corrected-test-set benchmark report: inputs, checks, figures, and HTML / Markdown / JSON output.

``benchmark_report(version, predictions)`` compares models on a published test-set version that has
corrections (from ``labelq relabel`` or a review): ``predictions`` is a table with ``id``, ``model`` and
either ``predicted_label`` (class index or class name) or ``pred_probs`` (a list of K probabilities).
Files go to ``<dataset>/reports/<tag>-benchmark.{html,md,json}``.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import schema as S
from ..errors import InputError
from ..io import atomic_write_text
from ..labelkind import LabelKind, kind_named, kind_of
from ..runner import step
from ..store import Version
from .error_rate import estimate_error_rate, rows_needed
from .metrics import CorrectedLabels, accuracy_table, prevalence_curve, rankings, swap_points


def corrected_labels(version: Version) -> tuple[pa.Table, CorrectedLabels]:
    """The version's rows and their given / corrected labels and label sets; refuses a version without corrections."""
    rows = version.read()
    if S.CORRECTED_LABEL not in rows.column_names or (rows[S.CORRECTED_LABEL].null_count == rows.num_rows and S.LABELS not in rows.column_names):
        raise InputError(
            f"{version.name} {version.tag} has no corrections",
            f"run `labelq relabel {version.name}` (or import reviews) first, then report on the version it publishes",
        )
    return rows, kind_of(rows).corrected_labels(rows)


def read_predictions(source: str | Path | pa.Table, ids: list[str], class_names: list[str], kind: LabelKind | None = None) -> dict[str, np.ndarray]:
    """Model -> predicted label per row of ``ids``, as the ``kind`` of label reads them (one class a row when not
    given: a class index or name, or the top class of pred_probs; tags: ``(N, K)`` predicted tags, from lists of tag
    indices or names, or from pred_probs at 0.5); every problem (unknown ids, a model missing rows,
    class indices or names outside the class list, bad probabilities) is a clear ``InputError``."""
    if isinstance(source, pa.Table):
        table = source
    else:
        path = Path(source)
        if not path.exists():
            raise InputError(f"predictions file {path} does not exist", "pass a Parquet or CSV file with columns id, model and predicted_label or pred_probs")
        if path.suffix.lower() == ".csv":
            import pyarrow.csv as pcsv

            table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types={"id": pa.string(), "model": pa.string()}))
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
    missing = {"id", "model"} - set(table.column_names)
    if missing or not ({"predicted_label", "pred_probs"} & set(table.column_names)):
        raise InputError(
            f"the predictions table has columns {table.column_names}", "it needs id, model, and predicted_label (class index or name) or pred_probs"
        )
    pos = {v: i for i, v in enumerate(ids)}
    tid = table["id"].cast(pa.string()).to_pylist()
    unknown = sorted({i for i in tid if i not in pos})
    if unknown:
        raise InputError(f"{len(unknown)} prediction ids are not rows of the test set, e.g. {unknown[:5]}", "predict on the published test-set version's ids")
    pred = (kind or kind_named("single")).read_predicted(table, class_names)
    out: dict[str, np.ndarray] = {}
    models = table["model"].cast(pa.string()).to_pylist()
    for m in sorted(set(models)):
        sel = [j for j, v in enumerate(models) if v == m]
        rows = np.array([pos[tid[j]] for j in sel])
        if len(set(rows.tolist())) != len(rows):
            raise InputError(f"model {m!r} has more than one prediction for some rows", "keep one prediction per (id, model)")
        if len(rows) != len(ids):
            raise InputError(
                f"model {m!r} has predictions for {len(rows):,} of the {len(ids):,} test rows", "predict every row of the test set, or leave the model out"
            )
        p = np.empty((len(ids), *pred.shape[1:]), dtype=pred.dtype)
        p[rows] = pred[sel]
        out[m] = p
    if not out:
        raise InputError("the predictions table is empty", "add predictions of at least one model")
    return out


def benchmark_summary(
    version: Version,
    predictions: dict[str, np.ndarray],
    labels: CorrectedLabels,
    rows: pa.Table,
    verified: dict[int, bool] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    width: float = 0.02,
) -> dict:
    """Every number of the report."""
    table = accuracy_table(predictions, labels, n_boot, seed)
    ranks, taus = rankings(table)
    observed = float(labels.mislabeled.mean())
    flagged = rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)
    strata = np.where(flagged, "flagged", "not flagged")
    est = estimate_error_rate(flagged.astype(float), verified or {}, strata)
    need = []
    for part in est.strata:
        sd = 0.5 if part["verified"] < 2 else None
        if sd is None:
            mask = strata == part["stratum"]
            idx = [i for i in (verified or {}) if mask[i]]
            resid = np.array([float(verified[i]) - float(flagged[i]) for i in idx])
            sd = float(resid.std(ddof=1)) or 0.05
        need.append(
            {
                "stratum": part["stratum"],
                "rows": part["rows"],
                "verified": part["verified"],
                "residual_sd": sd,
                f"random checks for +/-{width / 2:.1%}": rows_needed(width, sd, part["rows"], rows.num_rows),
            }
        )
    curve = prevalence_curve(table) if labels.kind.mixable else {}
    return {
        "dataset": version.name,
        "version": version.tag,
        "rows": rows.num_rows,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "classes": S.info_of(rows).class_names,
        "originally_mislabeled": int(labels.mislabeled.sum()),
        "observed_prevalence": observed,
        "label_sets": labels.sets is not None,
        "multi_label": labels.kind.lists,
        "label_kind": labels.kind.name,
        "bootstrap": {"resamples": n_boot, "seed": seed, "interval": "95% percentile"},
        "models": table,
        "ranks": ranks,
        "kendall_tau": taus,
        "swaps": swap_points(table, observed) if labels.kind.mixable else [],
        "prevalence_curve": {k: np.asarray(v).round(6).tolist() for k, v in curve.items()},
        "error_rate": est.as_dict(),
        "verification_needed": need,
        "corrections": _corrections(version),
    }


def _corrections(version: Version) -> dict:
    """Where the version's corrections come from, and their guarantee (``relabel --target-precision``) if any."""
    from ..report.audit import fix_rule_summary

    r = version.manifest().relabel
    if r is not None and r.guarantee:
        return {"guarantee": r.guarantee, "text": "Corrections: " + fix_rule_summary(r.guarantee) + "."}
    return {"guarantee": None, "text": "Corrections were made without a precision guarantee (no `relabel --target-precision`)."}


def _rate(e: dict) -> str:
    if e["lo"] is None or np.isnan(e["lo"]):
        return f"{100 * e['estimate']:.2f}% (no interval without random checks)"
    return f"{100 * e['estimate']:.2f}% [{100 * e['lo']:.2f}%, {100 * e['hi']:.2f}%]"


def _fmt_ci(r: dict, key: str) -> str:
    return "n/a" if np.isnan(r[key]) else f"{r[key]:.4f} [{r[key + '_lo']:.4f}, {r[key + '_hi']:.4f}]"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~-])")


def md_escape(text: object) -> str:
    """``text`` as literal Markdown inline text: special characters backslash-escaped, line breaks as spaces."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def metric_columns(s: dict) -> list[str]:
    """The report's figures per model, in order, as the summary's kind of label scores them (``LabelKind.benchmark_columns``)."""
    return _kind(s).benchmark_columns(s["label_sets"])


def _kind(s: dict) -> LabelKind:
    return kind_named(s.get("label_kind", "single"))


def markdown_summary(s: dict) -> str:
    """A Markdown summary that pastes into a paper or a README."""
    cols = metric_columns(s)
    heads = _kind(s).benchmark_heads
    lines = [
        f"### {md_escape(s['dataset'])} {s['version']}: {_kind(s).benchmark_title} on original vs corrected labels",
        "",
        f"{s['rows']:,} test rows, {s['originally_mislabeled']:,} originally mislabeled ({100 * s['observed_prevalence']:.2f}%). "
        f"95% bootstrap intervals ({s['bootstrap']['resamples']} resamples).",
        "",
        "| model | " + " | ".join(heads[c] for c in cols) + " | rank original -> corrected |",
        "|---|" + "---|" * (len(cols) + 1),
    ]
    for r in sorted(s["models"], key=lambda r: -r["corrected"]):
        lines.append(
            f"| {md_escape(r['model'])} | "
            + " | ".join(_fmt_ci(r, c) for c in cols)
            + f" | {s['ranks']['original'][r['model']]} -> {s['ranks']['corrected'][r['model']]} |"
        )
    lines += ["", "Kendall's tau between rankings: " + ", ".join(f"{k}: {v:.3f}" for k, v in s["kendall_tau"].items())]
    if s["swaps"]:
        lines += ["", "| better on correctly labeled rows | better on mislabeled rows | swap at prevalence | extra points needed |", "|---|---|---|---|"]
        lines += [
            f"| {md_escape(w['better on correctly labeled rows'])} | {md_escape(w['better on mislabeled rows'])} | {100 * w['swap at prevalence']:.1f}% | {w['extra_needed_points']:+.1f} |"
            for w in s["swaps"]
        ]
    e = s["error_rate"]
    kind = "design-based" if e["design_based"] else "NOT design-based: a stratum has no random checks, its flags are taken as is"
    lines += [
        "",
        f"Label-error rate: {_rate(e)} ({kind}; {e['n_verified']:,} rows verified); "
        f"checking only verified rows gives {100 * e['lower_bound_checked_only']:.2f}%, the detector alone {100 * e['surrogate_only']:.2f}%.",
        "",
        md_escape(s["corrections"]["text"]),
    ]
    return "\n".join(lines) + "\n"


def render_html(s: dict) -> str:
    from .plots import accuracy_figure, prevalence_figure, rank_figure

    e = html.escape
    md_table = markdown_summary(s)
    figs = [accuracy_figure(s), rank_figure(s), prevalence_figure(s) if s["prevalence_curve"] else ""]
    cols = metric_columns(s)
    rows_html = "".join(
        f"<tr><td>{e(r['model'])}</td>"
        + "".join(f"<td>{e(_fmt_ci(r, c))}</td>" for c in cols)
        + f"<td>{r['change']:+.4f}</td><td>{s['ranks']['original'][r['model']]} &rarr; {s['ranks']['corrected'][r['model']]}</td></tr>"
        for r in sorted(s["models"], key=lambda r: -r["corrected"])
    )
    heads = _kind(s).benchmark_heads
    head = "".join(f"<th>{e(c)}</th>" for c in ["model", *(heads[c] for c in cols), "change", "rank"])
    swaps = (
        "".join(
            f"<tr><td>{e(w['better on correctly labeled rows'])}</td><td>{e(w['better on mislabeled rows'])}</td><td>{100 * w['swap at prevalence']:.1f}%</td>"
            f"<td>{w['extra_needed_points']:+.1f}</td></tr>"
            for w in s["swaps"]
        )
        or "<tr><td colspan=4>no pair of models swaps places at any prevalence</td></tr>"
    )
    er = s["error_rate"]
    need = "".join(f"<tr>{''.join(f'<td>{e(str(v))}</td>' for v in n.values())}</tr>" for n in s["verification_needed"])
    need_head = "".join(f"<th>{e(k)}</th>" for k in s["verification_needed"][0]) if s["verification_needed"] else ""
    title = f"labelq benchmark: {s['dataset']} {s['version']}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} th, td {{ border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; }}
.fig {{ max-width: 100%; display: block; margin: 0.5em 0; }} .note {{ color: #666; font-size: 0.9em; }} pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}</style>
</head><body><h1>{e(title)}</h1>
<p>{s["rows"]:,} test rows; {s["originally_mislabeled"]:,} originally mislabeled ({100 * s["observed_prevalence"]:.2f}%). {e(_kind(s).benchmark_title)} with 95% bootstrap intervals.</p>
<h2>{e(_kind(s).benchmark_title[0].upper() + _kind(s).benchmark_title[1:])} per model</h2><table><tr>{head}</tr>{rows_html}</table>
<p>Kendall's tau: {e(", ".join(f"{k}: {v:.3f}" for k, v in s["kendall_tau"].items()))}</p>
{figs[0]}{figs[1]}
{_prevalence_html(s, figs[2], swaps)}
<h2>How many labels are wrong?</h2>
<p>Estimate {_rate(er)} ({"design-based" if er["design_based"] else "not design-based: a stratum has no random checks"});
{er["n_verified"]:,} rows verified; checked rows only: {100 * er["lower_bound_checked_only"]:.2f}% (a lower bound); detector alone: {100 * er["surrogate_only"]:.2f}%.</p>
<table><tr>{need_head}</tr>{need}</table>
<p>{e(s["corrections"]["text"])}</p>
<h2>Markdown summary</h2><pre>{e(md_table)}</pre>
</body></html>
"""


def _prevalence_html(s: dict, figure: str, swaps: str) -> str:
    """Where two models swap places as the share of mislabeled rows grows; for figures that do not mix linearly (R²), why not."""
    if not s["prevalence_curve"]:
        return f'<p class="note">No prevalence curve: {html.escape(_kind(s).benchmark_metric)} of a mix of rows is not the mix of the subsets\' figures.</p>'
    return f"""<h2>Prevalence: where pairs of models swap places</h2>
<p class="note">Expected accuracy on corrected labels if the test set held a given share of originally mislabeled rows (correctly labeled rows removed at random).</p>
{figure}
<table><tr><th>better on correctly labeled rows</th><th>better on mislabeled rows</th><th>swap at prevalence</th><th>extra points needed</th></tr>{swaps}</table>"""


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, float) and np.isnan(o):
        return None
    raise TypeError(type(o).__name__)


def write_benchmark_report(
    version: Version, predictions: str | Path | pa.Table, verified: dict[int, bool] | None = None, n_boot: int = 1000, seed: int = 0
) -> dict[str, Path]:
    """Check the inputs, compute, and write ``reports/<tag>-benchmark.{html,md,json}``; returns the paths."""
    rows, labels = corrected_labels(version)
    preds = read_predictions(predictions, rows[S.ID].to_pylist(), S.info_of(rows).class_names, labels.kind)
    summary = benchmark_summary(version, preds, labels, rows, verified, n_boot, seed)
    out = version.path.parent / "reports"
    stem = f"{version.tag}-benchmark"
    return {
        "html": atomic_write_text(out / f"{stem}.html", render_html(summary)),
        "md": atomic_write_text(out / f"{stem}.md", markdown_summary(summary)),
        "json": atomic_write_text(out / f"{stem}.json", json.dumps(summary, indent=1, default=_json_default).replace("NaN", "null")),
    }


def verified_from(path: str | Path | None, ids: list[str]) -> dict[int, bool] | None:
    """Read people's checks of a random sample: CSV or Parquet with ``id`` and ``is_label_error`` (bool)."""
    if path is None:
        return None
    path = Path(path)
    if path.suffix.lower() == ".csv":
        import pyarrow.csv as pcsv

        t = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types={"id": pa.string()}))
    else:
        import pyarrow.parquet as pq

        t = pq.read_table(path)
    if not {"id", "is_label_error"} <= set(t.column_names):
        raise InputError(f"{path} needs columns id and is_label_error", "one row per randomly drawn, checked test row")
    pos = {v: i for i, v in enumerate(ids)}
    unknown = [i for i in t["id"].cast(pa.string()).to_pylist() if i not in pos]
    if unknown:
        raise InputError(f"{len(unknown)} verified ids are not test rows, e.g. {unknown[:5]}")
    return {pos[i]: bool(v) for i, v in zip(t["id"].cast(pa.string()).to_pylist(), pc.cast(t["is_label_error"], pa.bool_()).to_pylist())}


def calibration_checks(store, version: Version) -> dict[int, bool] | None:
    """People's checks of the version's calibration sample (``labelq review export --sample``), as verified
    rows of the flagged stratum: a row is a label error when its reviewer's answer is not its given label.
    One random sample serves both the corrections' guarantee and the error-rate estimate."""
    from ..relabel.samples import calibration_reviews

    rows = version.read()
    if "review" not in kind_of(rows).supports:  # the review loop checks single labels
        return None
    pos, _ = calibration_reviews(store, rows, version.name)
    if not len(pos):
        return None
    given, answers = rows[S.LABEL].to_numpy(), rows[S.LABELS].to_pylist()
    return {int(i): answers[i] != [int(given[i])] for i in pos}


@step("benchmark-report")
def benchmark_step(
    name: str,
    predictions: str | None,
    store: str | None = None,
    version: int | str | None = None,
    verified: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    models: str | None = None,
) -> dict[str, Path]:
    """The whole report for ``name`` (latest or ``version``) in this process, from a ``predictions`` file
    or from the models a ``models`` TOML file says to train (``labelq.benchmark.train``)."""
    from ..store import Store

    if (predictions is None) == (models is None):
        raise InputError("give either predictions or a models file", "pass --predictions FILE or --models FILE")
    st = Store(store)
    v = st.version(name, version)
    ids = v.read(columns=[S.ID])[S.ID].to_pylist()
    checks = verified_from(verified, ids) if verified else calibration_checks(st, v)
    corrected_labels(v)  # a test set without corrections fails before any training
    if models is not None:
        from .train import load_models_config, train_predictions

        predictions = train_predictions(load_models_config(models), v)
    return write_benchmark_report(v, predictions, checks, n_boot, seed)
