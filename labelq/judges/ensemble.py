"""Combine judge votes with confident learning into one P(label is wrong) per judged example.

Methods (``AGGREGATIONS``):
- ``mean``: the mean of each annotator's P(wrong): 1 - p_label_correct for judges, 1 - label_score for
  confident learning. Every annotator counts the same, however little it knows.
- ``majority``: the share of annotators whose hard vote says the label is wrong.
- ``dawid_skene`` (default): Dawid & Skene's EM. Each annotator (every judge, and confident learning)
  gets its own table P(response | label right / wrong), learned from the data without ground truth,
  so a judge that answers the same whatever the example carries no weight, and one that agrees with
  the evidence gains weight. Responses are binned: a judge's p_label_correct into 4 bins, confident
  learning's score into 5, so confidence counts, not only the hard verdict. The EM starts from
  confident learning's flags, the anchor it knows best.
"""

from __future__ import annotations

import numpy as np

AGGREGATIONS = ("dawid_skene", "mean", "majority")
JUDGE_BINS = np.array([0.25, 0.5, 0.75])
CL_BINS = np.array([0.05, 0.2, 0.5, 0.8])


def _bin(p: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index per value; -1 where the value is missing (NaN)."""
    out = np.digitize(np.nan_to_num(p, nan=0.0), edges)
    out[np.isnan(p)] = -1
    return out


def dawid_skene(responses: list[np.ndarray], n_levels: list[int], init: np.ndarray, iters: int = 100, tol: float = 1e-6, smoothing: float = 1.0) -> tuple[np.ndarray, list[np.ndarray]]:
    """EM for a binary latent class (0 = label right, 1 = label wrong).

    ``responses[j]`` holds annotator j's response level per example (``-1`` = no response);
    ``init`` is the starting P(wrong) per example. Returns the posterior P(wrong) ``(N,)`` and each
    annotator's ``(2, levels)`` table of P(response | class).
    """
    post = np.clip(init.astype(float), 1e-3, 1 - 1e-3)
    tables: list[np.ndarray] = []
    for _ in range(iters):
        prior = np.clip(post.mean(), 1e-3, 1 - 1e-3)
        tables = []
        for r, levels in zip(responses, n_levels):
            t = np.full((2, levels), smoothing)
            seen = r >= 0
            np.add.at(t[1], r[seen], post[seen])
            np.add.at(t[0], r[seen], 1 - post[seen])
            tables.append(t / t.sum(axis=1, keepdims=True))
        log_wrong = np.full(len(post), np.log(prior))
        log_right = np.full(len(post), np.log(1 - prior))
        for r, t in zip(responses, tables):
            seen = r >= 0
            log_wrong[seen] += np.log(t[1, r[seen]])
            log_right[seen] += np.log(t[0, r[seen]])
        new = 1.0 / (1.0 + np.exp(log_right - log_wrong))
        done = np.max(np.abs(new - post)) < tol
        post = new
        if done:
            break
    return post, tables


def combine(judge_p_correct: dict[str, np.ndarray], cl_score: np.ndarray, cl_flag: np.ndarray, method: str = "dawid_skene") -> tuple[np.ndarray, dict]:
    """P(label wrong) ``(N,)`` for the judged examples, and what each annotator was worth.

    ``judge_p_correct[name]`` is that judge's p_label_correct per example (NaN = no vote).
    """
    if method not in AGGREGATIONS:
        from ..errors import InputError

        raise InputError(f"unknown aggregation {method!r}", f"use one of {list(AGGREGATIONS)}")
    p_wrong = [1.0 - p for p in judge_p_correct.values()] + [1.0 - cl_score]
    if method == "mean":
        return np.nanmean(np.column_stack(p_wrong), axis=1), {}
    if method == "majority":
        votes = np.column_stack([np.where(np.isnan(p), np.nan, (p > 0.5).astype(float)) for p in p_wrong[:-1]] + [cl_flag.astype(float)])
        return np.nanmean(votes, axis=1), {}
    responses = [_bin(p, JUDGE_BINS) for p in judge_p_correct.values()] + [_bin(cl_score, CL_BINS)]
    levels = [len(JUDGE_BINS) + 1] * len(judge_p_correct) + [len(CL_BINS) + 1]
    post, tables = dawid_skene(responses, levels, np.where(cl_flag, 0.9, 0.1))
    names = [*judge_p_correct, "confident_learning"]
    # how much an annotator's answers move the odds: |log likelihood ratio| averaged over the responses it gave
    worth = {}
    for n, r, t in zip(names, responses, tables):
        freq = np.bincount(r[r >= 0], minlength=t.shape[1]) / max(int((r >= 0).sum()), 1)
        worth[n] = float(freq @ np.abs(np.log(t[1] / t[0])))
    return post, {"annotator_information": worth, "tables": {n: t.round(4).tolist() for n, t in zip(names, tables)}}
