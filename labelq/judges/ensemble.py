"""Combine judge votes with confident learning into one P(label is wrong) per judged example.

Methods (``AGGREGATIONS``):
- ``calibrated`` (default): each judge's score is weighed by what it showed on labels known to be wrong. The
  judges are also asked about a sample of rows whose label was replaced by another class (``planted_labels``:
  ``judges.calibration``); a logistic regression on the judges' log-odds learns, from those rows under their
  given and their planted label, how far each judge's score moves the odds of "wrong", with all judges at
  once (so two judges that say the same thing are not counted twice). Confident learning is the prior, as
  in ``dawid_skene``: logit P(wrong | votes) = logit(1 - label_score) + the regression's log-likelihood
  ratio. A judge whose score does not change when the label is wrong gets a coefficient of 0. Without
  planted votes (``--judge-sample 0``) it falls back to ``dawid_skene``.
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

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)
AGGREGATIONS = ("calibrated", "dawid_skene", "mean", "majority")
MIN_PLANTED = 10  # fewer answered planted rows than this: too little to calibrate on
PENALTIES = (0.01, 0.1, 1.0, 10.0)  # the calibration's inverse L2 strengths, chosen among by 5-fold cross-validation
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


def wrong_logit(p_correct: np.ndarray) -> np.ndarray:
    """A judge's p_label_correct as the log-odds of "wrong", clipped to +-9 (a judge that is sure is not infinitely sure)."""
    p = np.clip(p_correct.astype(float), 1e-4, 1 - 1e-4)
    return np.log1p(-p) - np.log(p)


def calibrated(
    judge_p_correct: dict[str, np.ndarray],
    cl_score: np.ndarray,
    labels: np.ndarray,
    calibration_rows: np.ndarray,
    planted: np.ndarray,
    planted_p_correct: dict[str, np.ndarray],
    weights: dict[str, float] | None = None,
) -> tuple[np.ndarray, dict]:
    """P(label wrong) ``(N,)`` from the judges' scores, weighed by a regression on planted wrong labels.

    ``judge_p_correct[name]``: the judge's p_label_correct over the N judged rows (NaN: no vote), whose given
    classes are ``labels``; ``calibration_rows``: positions (in those N) of the rows that were also asked
    about a planted class ``planted``, and ``planted_p_correct[name]`` the judge's p_label_correct for it,
    in that order. The regression (its L2 penalty picked from ``PENALTIES`` by 5-fold cross-validation on those
    rows) learns "wrong" (planted) against "given" on those rows from every judge's log-odds at once, with one intercept per class judged (so a judge's liking for a class, and how the
    sample happened to fall over the classes, are not taken for knowing right from wrong). Its judges' terms
    are their log-likelihood ratio, added to confident learning's prior logit(1 - label_score). ``weights[name]`` (default 1) scales a judge's coefficient (0 ignores it).
    A missing vote counts as the judge's average answer (no evidence either way).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    names = list(judge_p_correct)
    given = np.column_stack([wrong_logit(judge_p_correct[n][calibration_rows]) for n in names])
    planted_x = np.column_stack([wrong_logit(planted_p_correct[n]) for n in names])
    x = np.vstack([given, planted_x])
    y = np.r_[np.zeros(len(given)), np.ones(len(planted_x))]
    judged = np.r_[labels[calibration_rows], planted]
    # only classes judged both as given and as planted say anything within a class
    both = np.intersect1d(judged[y == 0], judged[y == 1])
    keep = np.isin(judged, both)
    x, y, judged = x[keep], y[keep], judged[keep]
    # a weakly penalized intercept per class (x10: a hundredth of the penalty)
    onehot = 10.0 * (judged[:, None] == both[None, :])
    center, spread = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
    scale = np.where(spread > 1e-9, spread, np.inf)  # a judge that always answers the same becomes a column of 0

    def standard(values: np.ndarray) -> np.ndarray:
        return np.nan_to_num((values - center) / scale)

    design = np.column_stack([standard(x), onehot])
    # the penalty the planted rows' own held-out log-loss picks: little evidence, small coefficients
    loss = {c: -cross_val_score(LogisticRegression(C=c, fit_intercept=False), design, y, cv=5, scoring="neg_log_loss").mean() for c in PENALTIES}
    model = LogisticRegression(C=min(loss, key=loss.get), fit_intercept=False).fit(design, y)
    w = np.array([(weights or {}).get(n, 1.0) for n in names])
    coef = model.coef_[0][: len(names)] * w
    every = standard(np.column_stack([wrong_logit(judge_p_correct[n]) for n in names]))
    llr = every @ coef
    prior = np.clip(1.0 - cl_score.astype(float), 1e-3, 1 - 1e-3)
    post = 1.0 / (1.0 + np.exp(-(np.log(prior) - np.log1p(-prior) + llr)))
    per_judge = {}
    for j, n in enumerate(names):
        per_judge[n] = {"coefficient": round(float(coef[j]), 4), "planted_auroc": _within_class_auroc(y, x[:, j], judged)}
    # how much a judge's answers move the odds: |its term of the log-likelihood ratio|, averaged over the judged rows
    worth = {n: float(np.mean(np.abs(every[:, j] * coef[j]))) for j, n in enumerate(names)}
    calibration = {"planted_rows": len(planted), "rows_used": int(keep.sum()), "C": model.C, "judges": per_judge}
    return post, {"annotator_information": worth, "calibration": calibration}


def _within_class_auroc(wrong: np.ndarray, score: np.ndarray, judged: np.ndarray) -> float | None:
    """AUROC of ``score`` for ``wrong`` within each class judged, averaged over the classes where both occur
    (pooled over classes, a judge that prefers one class would look informative); None where none does."""
    from sklearn.metrics import roc_auc_score

    values = []
    for c in np.unique(judged):
        keep = (judged == c) & ~np.isnan(score)
        if len(np.unique(wrong[keep])) == 2:
            values.append(roc_auc_score(wrong[keep], score[keep]) if np.ptp(score[keep]) > 0 else 0.5)
    return round(float(np.mean(values)), 4) if values else None


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


def judges_alone(ev: JudgeEvidence, planted, error_rate: float, method: str, weights: dict[str, float]) -> tuple[np.ndarray, dict]:
    """P(label wrong) over the judged rows from the judges alone (the ``judges`` detector): ``combine_judges`` with
    the same prior for every row, ``error_rate`` (the share of wrong labels estimated for the data, kept within
    [0.01, 0.5]), in place of a detector's score of each row."""
    rate = float(np.clip(error_rate, 0.01, 0.5))
    n = len(ev.no_class)  # every row
    post, info = combine_judges(ev, planted, Prior(np.full(n, 1.0 - rate), np.zeros(n, dtype=bool)), method, weights)
    return post, {**info, "prior_error_rate": round(rate, 4)}


@dataclass(frozen=True)
class Prior:
    """What the judges are combined with: a detector's ``score`` of each row (low: likely wrong) and its flags."""

    score: np.ndarray
    is_issue: np.ndarray


def combine_judges(ev: JudgeEvidence, planted, detection, method: str, weights: dict[str, float]) -> tuple[np.ndarray, dict]:
    """P(label wrong) over the judged rows ``ev.rows`` and the ensemble's manifest section (``aggregation``: the
    method that ran). ``planted``: the ``judge_planted`` table (votes on planted wrong labels) or None;
    ``detection``: the prior, a detector's ``Detection`` (confident learning's) or a ``Prior``. ``calibrated`` without enough planted votes (fewer than
    ``MIN_PLANTED`` rows answered) falls back to ``dawid_skene``, and says so."""
    cl = detection.score[ev.rows]
    if method == "calibrated":
        usable = _planted_evidence(ev, planted)
        if usable is None:
            log.warning("judges: too few votes on planted labels to calibrate on (--judge-sample 0?); combined by dawid_skene instead")
            method = "dawid_skene"
        else:
            rows, labels, planted_labels, planted_p = usable
            post, info = calibrated(ev.per_judge, cl, labels, rows, planted_labels, planted_p, weights)
            return post, {"aggregation": method, **info}
    post, info = combine(ev.per_judge, cl, detection.is_issue[ev.rows], method, weights)
    return post, {"aggregation": method, **info}


def _planted_evidence(ev: JudgeEvidence, planted) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]] | None:
    """From the ``judge_planted`` table: positions of its rows among ``ev.rows``' judged rows, given labels over
    the judged rows (-1 where unknown), planted labels, and each judge's p_label_correct on them; None when
    fewer than ``MIN_PLANTED`` rows got an answer or a judge has no planted votes."""
    if planted is None or planted.num_rows == 0:
        return None
    judged_ids = ev.judged_ids
    ids = list(dict.fromkeys(planted["id"].to_pylist()))
    if not set(ids) <= set(judged_ids):
        return None
    _, planted_p, _ = pivot_votes(planted, ids)
    if set(planted_p) != set(ev.per_judge) or int((~np.isnan(np.column_stack(list(planted_p.values())))).any(axis=1).sum()) < MIN_PLANTED:
        return None
    first = {}
    for r in planted.select(["id", "given_label", "planted_label"]).to_pylist():
        first.setdefault(r["id"], r)
    position = {v: i for i, v in enumerate(judged_ids)}
    labels = np.full(len(judged_ids), -1, dtype=np.int64)
    rows = np.array([position[i] for i in ids], dtype=np.int64)
    labels[rows] = [first[i]["given_label"] for i in ids]
    planted_labels = np.array([first[i]["planted_label"] for i in ids], dtype=np.int64)
    both = np.intersect1d(labels[rows], planted_labels)  # what ``calibrated`` learns from: classes judged both ways
    if int(np.isin(labels[rows], both).sum()) < MIN_PLANTED or int(np.isin(planted_labels, both).sum()) < MIN_PLANTED:
        return None
    return rows, labels, planted_labels, {n: planted_p[n] for n in ev.per_judge}


@dataclass(frozen=True)
class JudgeEvidence:
    """The judges' votes as arrays over all ``N`` rows (in the order of the ids they were built for).

    ``rows``: positions of the judged rows, ``judged_ids`` their ids; ``per_judge``: p_label_correct per judge over the judged rows
    (NaN: no vote); ``proposals``: proposed label per judge over the judged rows (-2: none, -1: 'none of
    these'). Over all rows: ``no_class`` (most multiple-choice judges said no class fits), ``proposal_hist``
    ``(N, K)`` (proposals per class), ``choice`` (the majority proposal, -2 where none), ``accepts`` (the
    yes/no judges' mean p_label_correct >= 0.5) and ``p_correct`` (every judge's mean p_label_correct, 1
    where none answered).
    """

    rows: np.ndarray
    judged_ids: list[str]
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
    return JudgeEvidence(rows, [row_ids[r] for r in rows], per_judge, proposals, no_class, hist, choice, accepts, p_correct)


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
