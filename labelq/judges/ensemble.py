"""Combine judge votes with confident learning into one P(label is wrong) per judged example.

Methods (``AGGREGATIONS``):
- ``mean``: the mean of each annotator's P(wrong): 1 - p_label_correct for judges, 1 - label_score for
  confident learning. Every annotator counts the same, however little it knows.
- ``majority``: the share of annotators whose hard vote says the label is wrong.
- ``dawid_skene`` (default): Dawid & Skene's EM for the judges, with confident learning as a fixed
  per-example prior. Each judge gets its own table P(response | label right / wrong), learned from the
  data without ground truth, so a judge that answers the same whatever it sees carries no weight and
  one whose answers separate the two gains weight. Responses are a judge's p_label_correct in 4 bins,
  so confidence counts, not only the verdict. Confident learning enters as the prior
  P(wrong) = 1 - label_score (the model's probability of the given label), not as one more annotator:
  with a single informative annotator the classic model is not identifiable and its EM collapses
  (measured: AUROC .87 -> .50 with two useless judges). With the prior held fixed, useless judges leave
  confident learning's ranking exactly as it was, and informative ones add their evidence:
  logit P(wrong | votes) = logit(1 - label_score) + sum over judges of log P(response | wrong) / P(response | right).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AGGREGATIONS = ("dawid_skene", "mean", "majority")
JUDGE_BINS = np.array([0.25, 0.5, 0.75])


def _bin(p: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index per value; -1 where the value is missing (NaN)."""
    out = np.digitize(np.nan_to_num(p, nan=0.0), edges)
    out[np.isnan(p)] = -1
    return out


def dawid_skene(
    responses: list[np.ndarray],
    n_levels: list[int],
    prior: np.ndarray,
    iters: int = 100,
    tol: float = 1e-6,
    smoothing: float = 1.0,
    weights: list[float] | None = None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """EM for a binary latent class (0 = label right, 1 = label wrong) with a fixed per-example prior.

    ``responses[j]`` holds annotator j's response level per example (``-1`` = no response);
    ``prior`` is P(wrong) per example before any annotator is heard. Returns the posterior P(wrong)
    ``(N,)`` and each annotator's ``(2, levels)`` table of P(response | class). ``weights`` (default 1)
    scale each annotator's log-likelihood ratio: 0 ignores it, 1 trusts what EM learned.
    """
    weights = weights or [1.0] * len(responses)
    prior = np.clip(prior.astype(float), 1e-3, 1 - 1e-3)
    prior_logit = np.log(prior) - np.log1p(-prior)
    post = prior.copy()
    tables: list[np.ndarray] = []
    for _ in range(iters):
        tables = []
        for r, levels in zip(responses, n_levels):
            t = np.full((2, levels), smoothing)
            seen = r >= 0
            np.add.at(t[1], r[seen], post[seen])
            np.add.at(t[0], r[seen], 1 - post[seen])
            tables.append(t / t.sum(axis=1, keepdims=True))
        logit = prior_logit.copy()
        for r, t, w in zip(responses, tables, weights):
            seen = r >= 0
            logit[seen] += w * (np.log(t[1, r[seen]]) - np.log(t[0, r[seen]]))
        new = 1.0 / (1.0 + np.exp(-logit))
        done = np.max(np.abs(new - post)) < tol
        post = new
        if done:
            break
    return post, tables


def combine(
    judge_p_correct: dict[str, np.ndarray], cl_score: np.ndarray, cl_flag: np.ndarray, method: str = "dawid_skene", weights: dict[str, float] | None = None
) -> tuple[np.ndarray, dict]:
    """P(label wrong) ``(N,)`` for the judged examples, and what each annotator was worth.

    ``judge_p_correct[name]`` is that judge's p_label_correct per example (NaN = no vote); ``weights[name]``
    (default 1) is the judge's configured weight. Confident learning weighs 1 in ``mean`` and ``majority``.
    """
    if method not in AGGREGATIONS:
        from ..errors import InputError

        raise InputError(f"unknown aggregation {method!r}", f"use one of {list(AGGREGATIONS)}")
    w = np.array([(weights or {}).get(n, 1.0) for n in judge_p_correct] + [1.0])
    p_wrong = [1.0 - p for p in judge_p_correct.values()] + [1.0 - cl_score]
    if method in ("mean", "majority"):
        if method == "mean":
            values = np.column_stack(p_wrong)
        else:
            values = np.column_stack([np.where(np.isnan(p), np.nan, (p > 0.5).astype(float)) for p in p_wrong[:-1]] + [cl_flag.astype(float)])
        present = ~np.isnan(values)
        return (np.nan_to_num(values) * w).sum(axis=1) / (present * w).sum(axis=1), {}
    responses = [_bin(p, JUDGE_BINS) for p in judge_p_correct.values()]
    post, tables = dawid_skene(responses, [len(JUDGE_BINS) + 1] * len(responses), 1.0 - cl_score, weights=list(w[:-1]))
    names = list(judge_p_correct)
    # how much an annotator's answers move the odds: |log likelihood ratio| averaged over the responses it gave
    worth = {}
    for n, r, t in zip(names, responses, tables):
        freq = np.bincount(r[r >= 0], minlength=t.shape[1]) / max(int((r >= 0).sum()), 1)
        worth[n] = float(freq @ np.abs(np.log(t[1] / t[0])))
    return post, {"annotator_information": worth, "tables": {n: t.round(4).tolist() for n, t in zip(names, tables)}}


@dataclass(frozen=True)
class JudgeEvidence:
    """The judges' votes as arrays over all ``N`` rows (in the order of the ids they were built for).

    ``rows``: positions of the judged rows; ``per_judge``: p_label_correct per judge over the judged rows
    (NaN: no vote); ``proposals``: proposed label per judge over the judged rows (-2: none, -1: 'none of
    these'). Over all rows: ``no_class`` (most multiple-choice judges said no class fits), ``proposal_hist``
    ``(N, K)`` (proposals per class), ``choice`` (the majority proposal, -2 where none), ``accepts`` (the
    yes/no judges' mean p_label_correct >= 0.5) and ``p_correct`` (every judge's mean p_label_correct, 1
    where none answered).
    """

    rows: np.ndarray
    per_judge: dict[str, np.ndarray]
    proposals: dict[str, np.ndarray]
    no_class: np.ndarray
    proposal_hist: np.ndarray
    choice: np.ndarray
    accepts: np.ndarray
    p_correct: np.ndarray


def judge_evidence(votes, row_ids: list[str], n_classes: int) -> JudgeEvidence:
    """Build ``JudgeEvidence`` from a ``judge_votes`` table for the rows ``row_ids``: the one place votes are reshaped."""
    rows, per_judge, proposals = pivot_votes(votes, row_ids)
    n = len(row_ids)
    no_class = np.zeros(n, bool)
    no_class[rows] = fits_no_class(proposals, len(rows))
    hist = np.zeros((n, n_classes))
    for q in proposals.values():
        ok = q >= 0
        np.add.at(hist, (rows[ok], q[ok]), 1.0)
    choice = np.full(n, -2, dtype=np.int64)
    voted = hist.sum(axis=1) > 0
    choice[voted] = hist[voted].argmax(axis=1)
    choosers = {j for j, q in proposals.items() if (q != -2).any()}
    yes_no = [p for j, p in per_judge.items() if j not in choosers]
    accepts = np.zeros(n, bool)
    if yes_no:
        stacked = np.column_stack(yes_no)
        answered = ~np.isnan(stacked).all(axis=1)
        accepts[rows[answered]] = np.nanmean(stacked[answered], axis=1) >= 0.5
    p_correct = np.ones(n)
    if per_judge:
        p_correct[rows] = mean_p_correct(per_judge)
    return JudgeEvidence(rows, per_judge, proposals, no_class, hist, choice, accepts, p_correct)


def pivot_votes(votes, row_ids: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The judge_votes table as arrays over the judged rows, in ``row_ids`` order.

    Returns (positions of the judged rows in ``row_ids``, p_label_correct per judge with NaN for no
    vote, proposed label per judge with -2 for no proposal and -1 for 'none of these').
    """
    pos = {v: i for i, v in enumerate(row_ids)}
    judged = sorted(set(votes["id"].to_pylist()), key=pos.__getitem__)
    index = {v: j for j, v in enumerate(judged)}
    per_judge: dict[str, np.ndarray] = {}
    proposals: dict[str, np.ndarray] = {}
    for vote in votes.select(["id", "judge", "p_label_correct", "proposed_label"]).to_pylist():
        p = per_judge.setdefault(vote["judge"], np.full(len(judged), np.nan))
        q = proposals.setdefault(vote["judge"], np.full(len(judged), -2))
        j = index[vote["id"]]
        if vote["p_label_correct"] is not None:
            p[j] = vote["p_label_correct"]
        if vote["proposed_label"] is not None:
            q[j] = vote["proposed_label"]
    return np.array([pos[i] for i in judged], dtype=np.int64), per_judge, proposals


def fits_no_class(proposals: dict[str, np.ndarray], n: int) -> np.ndarray:
    """``(n,)``: most of the multiple-choice judges that answered picked 'none of these'.

    Only multiple-choice judges propose labels; yes/no judges (all -2) do not count.
    """
    choosers = [q for q in proposals.values() if (q != -2).any()]
    if not choosers:
        return np.zeros(n, bool)
    q = np.column_stack(choosers)
    answered = q != -2
    return ((q == -1) & answered).sum(axis=1) > answered.sum(axis=1) / 2


def mean_p_correct(per_judge: dict[str, np.ndarray]) -> np.ndarray:
    """The judges' mean p_label_correct per row; 1 (no evidence) where no judge answered."""
    stack = np.column_stack(list(per_judge.values()))
    answered = (~np.isnan(stack)).sum(axis=1)
    return np.where(answered > 0, np.nansum(stack, axis=1) / np.maximum(answered, 1), 1.0)
