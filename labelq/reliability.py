"""Do the flags mean anything? The out-of-sample model against the class prior.

Confident learning trusts the model: where the model is no better than always answering the most
common class, its "disagreements" with the labels are noise, and so are the flags, the corrections and
the estimated error rate. (First names labelled female/male with TF-IDF + logistic regression: accuracy
0.50, 120 of 300 rows flagged, 11 truly wrong, "40% suspected label errors" against a true 10%.)

The check: the one-sided Clopper-Pearson lower bound (95%) of the out-of-sample accuracy must be above
the majority class's share, the accuracy of a model that learned nothing. Per class, the recall is
reported beside the class's share. A version that fails is marked unreliable: no automatic corrections,
no error-rate estimate presented as real, and a warning that says what would help.
"""

from __future__ import annotations

import numpy as np

from .detect.streaming_cl import ProbsChunks, argmax_of
from .precision import lower_bound

LEVEL = 0.05
SUGGESTIONS = (
    "another model (--model), or one suited to the data",
    "more or better features (pretrained embeddings)",
    "LLM judges that carry signal (--judges)",
    "a reviewed random sample (labelq review export --sample 100), which estimates the error rate and certifies corrections without trusting the model",
)


def check_signal(labels: np.ndarray, pred_probs: np.ndarray | ProbsChunks) -> dict:
    """Whether the out-of-sample model beats the class prior (see the module docstring)."""
    labels = np.asarray(labels)
    n, k = len(labels), pred_probs.shape[1]
    pred = argmax_of(pred_probs)
    hits = int((pred == labels).sum())
    share = np.bincount(labels, minlength=k) / max(n, 1)
    majority = float(share.max()) if n else 0.0
    lo = lower_bound(hits, n, LEVEL)
    return {
        "reliable": bool(lo > majority),
        "accuracy": hits / max(n, 1),
        "accuracy_lo": lo,
        "majority_share": majority,
        "class_recall": [
            None if total == 0 else float(hit / total)
            for hit, total in zip(np.bincount(labels[pred == labels], minlength=k), np.bincount(labels, minlength=k), strict=True)
        ],
        "class_share": share.tolist(),
        "test": f"one-sided {100 * (1 - LEVEL):.0f}% Clopper-Pearson lower bound of the out-of-sample accuracy above the majority class's share",
    }


def check_tag_signal(tags: np.ndarray, pred_probs: np.ndarray) -> dict:
    """``check_signal`` for a multi-label dataset: over every (row, tag) pair, whether the model's tag
    accuracy (probability at least 0.5 = the tag is there) beats always answering each tag's more common
    value (the prior); ``majority_share`` is that prior's tag accuracy, ``class_recall`` each tag's recall."""
    tags = np.asarray(tags, dtype=bool)
    pred = np.asarray(pred_probs) >= 0.5
    n = tags.size
    hits = int((pred == tags).sum())
    share = tags.mean(axis=0) if len(tags) else np.zeros(tags.shape[1])
    majority = float(np.maximum(share, 1 - share).mean()) if len(tags) else 0.0
    lo = lower_bound(hits, n, LEVEL)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = (pred & tags).sum(axis=0) / tags.sum(axis=0)
    return {
        "reliable": bool(lo > majority),
        "accuracy": hits / max(n, 1),
        "accuracy_lo": lo,
        "majority_share": majority,
        "class_recall": [None if not np.isfinite(r) else float(r) for r in recall],
        "class_share": share.tolist(),
        "test": f"one-sided {100 * (1 - LEVEL):.0f}% Clopper-Pearson lower bound of the out-of-sample tag accuracy (over rows x tags) above that of always answering each tag's more common value",
    }


def with_warning(signal: dict, judges: dict | None = None) -> dict:
    """``signal`` with, when it is unreliable, the warning and what would help; ``judges``: the manifest's
    judge section, whose Dawid-Skene information goes into the same warning."""
    if signal["reliable"]:
        return signal
    info = (judges or {}).get("annotator_information") or {}
    judge_text = ""
    if info:
        judge_text = (
            " The LLM judges carried information " + ", ".join(f"{j} {v:.2f}" for j, v in info.items()) + " (0 = none: the ensemble gives them no weight)."
        )
    compared = signal.get("compared") or (
        f"the class prior: accuracy {signal['accuracy']:.3f} "
        f"(95% lower bound {signal['accuracy_lo']:.3f}) against {signal['majority_share']:.3f} for always answering the most common class"
    )
    warning = (
        f"the out-of-sample model is no better than {compared}. "
        "The flags are noise: no automatic corrections were made, and the estimated error rate means nothing." + judge_text
    )
    return {**signal, "warning": warning, "suggestions": list(SUGGESTIONS)}


def check_value_signal(y: np.ndarray, pred: np.ndarray) -> dict:
    """``check_signal`` for a number a row: whether the out-of-sample predictions beat always answering the mean.
    The test is one-sided on the per-row gain in squared error, ``(y - mean)² - (y - pred)²`` (a t lower bound of
    its mean above 0); ``accuracy`` is the out-of-sample R² and ``accuracy_lo`` that bound over the variance."""
    from scipy import stats

    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    n = len(y)
    variance = float(np.mean((y - y.mean()) ** 2)) if n else 0.0
    gain = (y - y.mean()) ** 2 - (y - pred) ** 2
    if n < 3 or variance == 0:
        r2 = lo = 0.0
    else:
        r2 = float(gain.mean() / variance)
        lo = float((gain.mean() - stats.t.ppf(1 - LEVEL, n - 1) * gain.std(ddof=1) / np.sqrt(n)) / variance)
    return {
        "reliable": bool(lo > 0),
        "accuracy": r2,
        "accuracy_lo": lo,
        "majority_share": 0.0,
        "compared": f"always answering the mean: R² {r2:.3f} (95% lower bound {lo:.3f}) against 0",
        "test": f"one-sided {100 * (1 - LEVEL):.0f}% t lower bound of the out-of-sample R² (the mean gain in squared error over the mean's) above 0",
    }
