"""Figures of the benchmark report (``<img>`` tags with PNG data URIs)."""

from __future__ import annotations

import numpy as np

from ..labelkind import kind_named
from ..report.plots import _figure, _to_uri


def _img(uri: str, alt: str) -> str:
    return f'<img class="fig" src="{uri}" alt="{alt}">'


def accuracy_figure(s: dict) -> str:
    """Accuracy on original vs corrected labels per model, with 95% intervals; the diagonal is 'no change'."""
    plt, fig = _figure(5.5, 4.5)
    ax = fig.add_subplot(111)
    for r in s["models"]:
        ax.errorbar(
            r["original"],
            r["corrected"],
            xerr=[[r["original"] - r["original_lo"]], [r["original_hi"] - r["original"]]],
            yerr=[[r["corrected"] - r["corrected_lo"]], [r["corrected_hi"] - r["corrected"]]],
            fmt="o",
            capsize=3,
            label=r["model"],
        )
    lo = min(min(r["original_lo"], r["corrected_lo"]) for r in s["models"])
    hi = max(max(r["original_hi"], r["corrected_hi"]) for r in s["models"])
    pad = 0.05 * (hi - lo or 0.01)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#999", lw=1, ls="--")
    metric = kind_named(s.get("label_kind", "single")).benchmark_metric
    ax.set_xlabel(f"{metric} on original labels")
    ax.set_ylabel(f"{metric} on corrected labels")
    ax.legend(fontsize=8)
    ax.set_title("Original vs corrected test labels")
    return _img(_to_uri(plt, fig), "accuracy on original vs corrected labels")


def rank_figure(s: dict) -> str:
    """Each model's rank under each labeling (a slope chart)."""
    labelings = list(s["ranks"])
    plt, fig = _figure(1.6 + 1.6 * len(labelings), 0.8 + 0.45 * len(s["models"]))
    ax = fig.add_subplot(111)
    for r in s["models"]:
        ys = [s["ranks"][lab][r["model"]] for lab in labelings]
        ax.plot(range(len(labelings)), ys, marker="o")
        ax.annotate(r["model"], (len(labelings) - 1, ys[-1]), xytext=(6, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_xticks(range(len(labelings)), [lab.replace("_", " ") for lab in labelings])
    ax.set_yticks(range(1, len(s["models"]) + 1))
    ax.invert_yaxis()
    ax.set_ylabel("rank (1 = best)")
    ax.set_xlim(-0.3, len(labelings) - 0.3)
    ax.set_title("Rankings")
    return _img(_to_uri(plt, fig), "rank changes")


def prevalence_figure(s: dict) -> str:
    """Expected accuracy on corrected labels vs the share of originally mislabeled test rows."""
    curve = s["prevalence_curve"]
    p = np.asarray(curve["prevalence"])
    plt, fig = _figure(6.0, 4.0)
    ax = fig.add_subplot(111)
    for r in s["models"]:
        ax.plot(100 * p, curve[r["model"]], label=r["model"])
    ax.axvline(100 * s["observed_prevalence"], color="#999", ls="--", lw=1, label="this test set")
    for w in s["swaps"]:
        ax.axvline(100 * w["swap at prevalence"], color="#d62728", lw=0.6, alpha=0.6)
    ax.set_xlabel("originally mislabeled rows in the test set (%)")
    ax.set_ylabel("accuracy on corrected labels")
    ax.legend(fontsize=8)
    ax.set_title("Prevalence of label errors (red: two models swap places)")
    return _img(_to_uri(plt, fig), "prevalence curve")
