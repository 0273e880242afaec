"""Figures as base64 PNG data URIs, so a report is one self-contained HTML file."""

from __future__ import annotations

import base64
import io

import numpy as np


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(width, height), dpi=110)


def _to_uri(plt, fig) -> str:
    buf = io.BytesIO()
    # the saved image grows to hold every label (tight_layout could not fit two long class names in a 2 x 2 heatmap, and warned)
    fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def noise_heatmap(joint: np.ndarray, class_names: list[str], n_rows: int) -> str:
    """Heatmap of the estimated joint distribution of given label (rows) and true label (columns), as counts.
    With more than ``SHOWN_CLASSES`` classes, the ``SHOWN_CLASSES`` classes with the most estimated noise
    (off-diagonal counts as given or as true label), so that every cell stays legible."""
    counts = np.asarray(joint) * n_rows
    off = counts.copy()
    np.fill_diagonal(off, np.nan)
    shown = _most(np.nansum(off, axis=0) + np.nansum(off, axis=1))
    counts, off = counts[np.ix_(shown, shown)], off[np.ix_(shown, shown)]
    size = len(shown)
    plt, fig = _figure(1.2 + 0.55 * size, 1.0 + 0.5 * size)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(off, cmap="Reds")
    for i, j in zip(*np.nonzero(counts >= 0.5), strict=True):
        ax.text(j, i, f"{counts[i, j]:.0f}", ha="center", va="center", fontsize=7, color="grey" if i == j else "black")
    ax.set_xticks(range(size), [class_names[t] for t in shown], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(size), [class_names[t] for t in shown], fontsize=8)
    ax.set_xlabel("estimated true label")
    ax.set_ylabel("given label")
    ax.set_title("Estimated label noise (off-diagonal counts)" + _of(size, len(class_names), "the most noise"))
    fig.colorbar(im, ax=ax, shrink=0.7)
    return _to_uri(plt, fig)


SHOWN_CLASSES = 25


def _most(values: np.ndarray) -> np.ndarray:
    """All classes in order, or with more than ``SHOWN_CLASSES`` the ``SHOWN_CLASSES`` of largest ``values``, in class order."""
    if len(values) <= SHOWN_CLASSES:
        return np.arange(len(values))
    return np.sort(np.argsort(-values, kind="stable")[:SHOWN_CLASSES])


def _of(shown: int, k: int, what: str, kind: str = "classes") -> str:
    return f": the {shown} of {k} {kind} with {what}" if shown < k else ""


def class_rates(
    class_names: list[str],
    flagged_rate: np.ndarray,
    estimated_rate: np.ndarray | None,
    labels: tuple[str, str] = ("flagged", "estimated error rate"),
    ylabel: str = "% of rows with this given label",
    title: str = "Label issues per class",
    kind: str = "classes",
) -> str:
    """Bars per class: share of rows flagged, and confident learning's estimated error rate (with more than
    ``SHOWN_CLASSES`` classes, the ``SHOWN_CLASSES`` of highest second rate). ``labels``, ``ylabel``,
    ``title`` and ``kind`` name other pairs of rates (a multi-label version's tags flagged missing and extra)."""
    shown = _most(flagged_rate if estimated_rate is None else estimated_rate)
    plt, fig = _figure(max(5.0, 0.6 * len(shown) + 2), 3.2)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(shown))
    if estimated_rate is None:
        ax.bar(x, 100 * flagged_rate[shown], width=0.6, label=labels[0], color="#d62728")
    else:
        ax.bar(x - 0.2, 100 * flagged_rate[shown], width=0.4, label=labels[0], color="#d62728")
        ax.bar(x + 0.2, 100 * estimated_rate[shown], width=0.4, label=labels[1], color="#1f77b4")
    ax.set_xticks(x, [class_names[t] for t in shown], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.set_title(title + _of(len(shown), len(class_names), f"the highest {labels[1]}", kind))
    return _to_uri(plt, fig)


def residual_plot(given: np.ndarray, predicted: np.ndarray, flagged: np.ndarray, target: str) -> str:
    """A regression target's residuals: the given values against the out-of-sample predictions (flagged rows in
    red, the diagonal where they agree), and the residuals' histogram by flag."""
    plt, fig = _figure(9.0, 3.4)
    ax = fig.add_subplot(1, 2, 1)
    shown = np.random.default_rng(0).permutation(len(given))[:20_000]  # a sample of 20,000 points is what the eye takes in
    keep = np.zeros(len(given), bool)
    keep[shown] = True
    for mask, colour, label, size in ((keep & ~flagged, "#1f77b4", "not flagged", 4), (keep & flagged, "#d62728", "flagged", 9)):
        ax.scatter(predicted[mask], given[mask], s=size, color=colour, alpha=0.6, label=label, linewidths=0)
    lo, hi = float(min(given.min(), predicted.min())), float(max(given.max(), predicted.max()))
    ax.plot([lo, hi], [lo, hi], color="grey", linewidth=0.8)
    ax.set_xlabel(f"predicted {target} (out of sample)")
    ax.set_ylabel(f"given {target}")
    ax.legend(fontsize=8)
    ax.set_title("Given against predicted" + (f" ({len(shown):,} of {len(given):,} rows)" if len(shown) < len(given) else ""))
    ax = fig.add_subplot(1, 2, 2)
    residual = given - predicted
    bins = np.linspace(float(residual.min()), float(residual.max()) or 1.0, 41)
    for mask, colour, label in ((~flagged, "#1f77b4", "not flagged"), (flagged, "#d62728", "flagged")):
        ax.stairs(np.histogram(residual[mask], bins=bins)[0], bins, fill=True, color=colour, alpha=0.8, label=label)
    ax.set_yscale("symlog")
    ax.set_xlabel("residual (given - predicted)")
    ax.set_ylabel("rows")
    ax.set_title("Residuals")
    return _to_uri(plt, fig)


def top_counts(names: list[str], counts: list[int], title: str, xlabel: str) -> str:
    """Horizontal bars of ``counts``, largest on top."""
    plt, fig = _figure(6.0, 0.8 + 0.28 * max(len(names), 1))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(names))[::-1]
    ax.barh(y, counts, color="#d62728")
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return _to_uri(plt, fig)


def score_histogram(scores: np.ndarray, is_issue: np.ndarray) -> str:
    plt, fig = _figure(5.0, 2.8)
    ax = fig.add_subplot(1, 1, 1)
    bins = np.linspace(0, 1, 41)  # counted here: matplotlib's hist is slow on millions of rows
    for mask, colour, label in ((~is_issue, "#1f77b4", "not flagged"), (is_issue, "#d62728", "flagged")):
        ax.stairs(np.histogram(scores[mask], bins=bins)[0], bins, fill=True, color=colour, alpha=0.8, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("label quality score (low = likely wrong)")
    ax.set_ylabel("rows (log)")
    ax.legend(fontsize=8)
    return _to_uri(plt, fig)


def annotator_quality(annotators: list[dict], shown: int = 30) -> str:
    """Each annotator's CROWDLAB quality beside their agreement with the consensus, lowest quality first (at most
    ``shown``), each bar labelled with how many labels it rests on."""
    rows = [a for a in annotators if a.get("quality") is not None][:shown]
    plt, fig = _figure(6.5, 0.6 + 0.28 * max(len(rows), 1))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [a["quality"] for a in rows], height=0.4, color="#1e88e5", label="quality (CROWDLAB)")
    ax.barh(y + 0.2, [a["agreement_with_consensus"] for a in rows], height=0.4, color="#bdbdbd", label="agreement with the consensus")
    ax.set_yticks(y, [f"{a['annotator']} ({a['n_labeled']:,})" for a in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("score (the annotator's labels in brackets)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18 - 1.2 / max(len(rows), 4)), ncol=2, frameon=False)  # below the axis: the bars fill it
    ax.set_title("Annotators, lowest quality first", fontsize=10)
    return _to_uri(plt, fig)


def thumbnail(encoded: bytes, size: int = 64) -> str:
    """An image's thumbnail (nearest-neighbour upscaled for tiny images) as a PNG data URI."""
    from PIL import Image

    img = Image.open(io.BytesIO(encoded))
    scale = max(1, size // max(img.size))
    if scale > 1:
        img = img.resize((img.size[0] * scale, img.size[1] * scale), Image.NEAREST)
    else:
        img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def history_trend(runs: list[dict]) -> str:
    """Estimated label-error rate (with its 95% interval) and flagged share over the recorded audit runs."""
    plt, fig = _figure(7.0, 3.2)
    ax = fig.add_subplot(111)
    x = np.arange(len(runs))
    est = np.array([r["estimated_error_rate"] for r in runs])
    lo = np.array([r["estimated_error_rate_lo"] for r in runs])
    hi = np.array([r["estimated_error_rate_hi"] for r in runs])
    ax.fill_between(x, 100 * lo, 100 * hi, alpha=0.25, label="95% interval")
    ax.plot(x, 100 * est, marker="o", label="estimated label-error rate")
    ax.plot(x, [100 * r["flagged_rate"] for r in runs], marker=".", ls="--", label="flagged")
    for i, r in enumerate(runs):
        if r["status"] == "alert":
            ax.plot(i, 100 * est[i], "rx", ms=10)
    ax.set_xticks(x, [f"v{r['version']}\n{r['finished_at'][5:16]}" for r in runs], fontsize=7)
    ax.set_ylabel("% of rows")
    ax.set_title("Audit history (red x: alert)")
    ax.legend(fontsize=8)
    return _to_uri(plt, fig)
