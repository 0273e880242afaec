"""``ensemble``: several detectors, the one that works on *this* dataset chosen by errors planted in it.

No detector wins everywhere (``bench/detectors.py``): confident learning on a good model's pred_probs leads
under uniform and class-dependent flips, the neighbour vote (``knn_vote``) where the features are good
and the model is not, and under instance-dependent flips. A fixed average of the two is worse than the
better one. So the choice comes from evidence on the user's data:

1. **Members**: confident learning on the pred_probs and, where the audit has a feature space, ``knn_vote``;
   plus their rank average (each row's mean rank of its scores over the members).
2. **Planted noise**: a share ``plant`` of the rows (5%, at least 20 rows) get a wrong label drawn from a
   noise model estimated on the data: half class-dependent (from confident learning's estimated joint:
   a given class turns into the classes it is confused with), half instance-dependent (rows drawn by the
   model's doubt, each given the model's most likely other class). Out-of-sample pred_probs never saw
   their own row's label, so the members run again on the planted labels without training a model.
3. **Choice**: each candidate's F1 on the planted rows (its flags against them; rows every candidate
   flags on the real labels, likely real errors, are left out of the scoring; the rank average counts here
   at the members' mean count), and its average precision,
   averaged over rounds of planting (at least 3, more on small data: about 300 planted rows in all); the
   candidate with the best F1 flags the real labels. The rank average has no rule of its own for how many
   rows to flag: it flags as many as the member with the best F1 on the planted rows (in each round, and
   on the real labels). The planted labels never leave this function.

4. **Reviewed rows**, where people reviewed a detector sample of the dataset (``labelq.detector_samples``:
   a stratified random sample over all rows, so that it sees the errors no detector flags): each candidate's
   precision, recall and F1 on the real errors are estimated from the reviewed rows and their weights, and so
   is the F1 of flagging the ``n`` rows of lowest score of each candidate, for the best ``n``. Planted errors
   are only a proxy: they are easier than real ones (the model never learned them), and the data's own errors
   count as false flags in their scoring, so they say little about *how many* rows to flag. With at least
   ``MIN_REVIEWED`` reviewed rows and ``MIN_WRONG`` wrong labels among them, the candidate (and the number of
   rows to flag) of best estimated F1 replaces the planted choice; with fewer, the estimates are only shown.

The returned ``Detection`` is the chosen candidate's on the real labels; its ``extra`` keeps confident
learning's noise estimates (the version's ``noise.parquet``), every candidate's detection (``candidates``:
the issues table keeps their scores and flags) and, under ``ensemble``, every candidate's planted F1 and AP,
the number of planted rows, the reviewed rows' estimates and the choice (the manifest and the report show them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import InputError
from .confident_learning import ConfidentLearning, Detection
from .context import DetectContext, ReviewedSample
from .knn_vote import KnnVote
from .streaming_cl import whole

log = logging.getLogger(__name__)

RANK_AVERAGE = "rank_average"
MIN_PLANTED = 300  # planted rows over all rounds, at least
MAX_ROUNDS = 12
MIN_REVIEWED = 30  # reviewed rows of a detector sample, at least, before they decide
MIN_WRONG = 5  # and wrong labels among them


def rank_scores(scores: list[np.ndarray]) -> np.ndarray:
    """Each row's mean over ``scores`` of its rank, scaled to [0, 1] (low = likely wrong in every member)."""
    from scipy.stats import rankdata

    return np.mean([rankdata(s) / len(s) for s in scores], axis=0)


def plant_noise(
    labels: np.ndarray, probs: np.ndarray, joint: np.ndarray | None, share: float, seed: int, avoid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(planted labels, planted mask)``: ``share`` of the rows (none of ``avoid``) given a wrong label, half by
    the confident joint's confusions of their class, half by the model's most likely other class for rows it doubts."""
    rng = np.random.default_rng(seed)
    n, k = probs.shape
    pool = np.flatnonzero(~avoid) if avoid is not None else np.arange(n)
    m = min(max(20, int(round(share * n))), len(pool) // 2)
    rows = rng.choice(pool, m, replace=False)
    half = m // 2
    out = labels.copy()
    confusions = np.asarray(joint, dtype=np.float64).copy() if joint is not None else np.ones((k, k))
    np.fill_diagonal(confusions, 0)
    confusions += 1e-6 * (1 - np.eye(k))  # a class never confused still turns into some other
    for i in rows[:half]:
        p = confusions[labels[i]]
        out[i] = rng.choice(k, p=p / p.sum())
    rest = np.setdiff1d(pool, rows[:half])
    doubt = 1 - probs[rest, labels[rest]] + 1e-3
    picked = rng.choice(rest, m - half, replace=False, p=doubt / doubt.sum())
    other = probs[picked].copy()
    other[np.arange(len(picked)), labels[picked]] = -np.inf
    out[picked] = other.argmax(axis=1)
    planted = np.zeros(n, dtype=bool)
    planted[rows[:half]] = planted[picked] = True
    return out, planted


@contextmanager
def quiet(*names: str) -> Iterator[None]:
    """The loggers ``names`` at WARNING within the block, then as they were."""
    loggers = [logging.getLogger(n) for n in dict.fromkeys(names)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _f1_ap(truth: np.ndarray, flags: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import average_precision_score

    hits = int((flags & truth).sum())
    f1 = 2 * hits / max(int(flags.sum()) + int(truth.sum()), 1)
    return round(f1, 4), round(float(average_precision_score(truth, -score)), 4)


def _lowest(score: np.ndarray, n: int) -> np.ndarray:
    """``(N,)`` bool: the ``n`` rows of lowest ``score``."""
    flags = np.zeros(len(score), dtype=bool)
    flags[np.argsort(score, kind="stable")[:n]] = True
    return flags


@dataclass
class Ensemble:
    """The detector described above: ``plant`` the share of rows planted, ``seed`` the planting's seed."""

    filter_by: str = "prune_by_noise_rate"
    plant: float = 0.05
    rounds: int = 3
    seed: int = 0
    name: str = "ensemble"
    needs: ClassVar[tuple[str, ...]] = ("pred_probs",)  # and the feature space, where the audit has one

    def __post_init__(self) -> None:
        if not 0 < self.plant <= 0.25:
            raise InputError(f"the planted share must be in (0, 0.25], got {self.plant}", "use 0.05")
        ConfidentLearning(filter_by=self.filter_by)  # refuses an unknown filter_by

    def rounds_for(self, n_rows: int) -> int:
        """Rounds of planting: ``rounds``, and more on small data, until about ``MIN_PLANTED`` rows are planted in all
        (569 rows at 5%: 28 a round, 11 rounds; a choice made on fewer rows turns on a handful of them)."""
        per_round = min(max(20, int(round(self.plant * n_rows))), n_rows // 4)
        return max(self.rounds, min(MAX_ROUNDS, -(-MIN_PLANTED // max(per_round, 1))))

    def members(self, ctx: DetectContext) -> dict[str, Any]:
        out: dict[str, Any] = {"confident_learning": ConfidentLearning(filter_by=self.filter_by)}
        if ctx.has("features"):
            out["knn_vote"] = KnnVote(filter_by=self.filter_by)
        return out

    def _candidates(self, members: dict[str, Any], labels: np.ndarray, ctx: DetectContext, probs: np.ndarray) -> dict[str, Detection]:
        """Each member's detection on ``labels``, and their rank average."""
        sub = ctx.with_labels(labels)
        sub.pred_probs = probs
        found = {name: (m.detect_context(sub) if hasattr(m, "detect_context") else m.detect(labels, probs)) for name, m in members.items()}
        if len(found) > 1:
            dets = list(found.values())
            score = rank_scores([d.score for d in dets])
            # provisional flags, at the members' mean count: they count in which rows every candidate flags (``known``);
            # detect_context then gives the rank average the best member's count
            flags = _lowest(score, int(round(np.mean([d.is_issue.sum() for d in dets]))))
            found[RANK_AVERAGE] = Detection(RANK_AVERAGE, score, flags, dets[0].suggested_label)
        return found

    def detect_context(self, ctx: DetectContext) -> Detection:
        t0 = time.perf_counter()
        probs = whole(ctx.pred_probs).astype(np.float64)
        members = self.members(ctx)
        real = self._candidates(members, ctx.labels, ctx, probs)
        cl = real["confident_learning"]
        # rows every candidate flags on the real labels are likely real errors: they are left out of the scoring, so
        # that no candidate is marked down for finding them (rows only some flag stay: a weak model's many false
        # flags would otherwise leave the planted rows easy to find, and every candidate look good)
        known = np.all([d.is_issue for d in real.values()], axis=0)
        runs, trials = [], []
        for r in range(self.rounds_for(len(ctx.labels))):
            planted_labels, truth = plant_noise(ctx.labels, probs, cl.extra.get("joint"), self.plant, self.seed + r, avoid=known)
            with quiet(*(type(m).__module__ for m in members.values())):  # the members' own log lines, once a round: only the real labels'
                trial = self._candidates(members, planted_labels, ctx, probs)
            runs.append({name: _f1_ap(truth[~known], d.is_issue[~known], d.score[~known]) for name, d in trial.items() if name != RANK_AVERAGE})
            trials.append((trial, truth))
        if RANK_AVERAGE in real:  # the rank average flags as many rows as the member that did best on the planted rows
            best = max(runs[0], key=lambda name: float(np.mean([run[name][0] for run in runs])))
            for run, (trial, truth) in zip(runs, trials, strict=True):
                flags = _lowest(trial[RANK_AVERAGE].score, int(trial[best].is_issue.sum()))
                run[RANK_AVERAGE] = _f1_ap(truth[~known], flags[~known], trial[RANK_AVERAGE].score[~known])
            average = real[RANK_AVERAGE]
            real[RANK_AVERAGE] = Detection(RANK_AVERAGE, average.score, _lowest(average.score, int(real[best].is_issue.sum())), average.suggested_label)
        measured = {name: tuple(round(float(np.mean([run[name][j] for run in runs])), 4) for j in (0, 1)) for name in runs[0]}
        chosen = max(measured, key=lambda name: (measured[name][0], measured[name][1]))
        log.info(
            "ensemble: %d rows planted; F1 / AP on them %s; the planted errors choose %s",
            int(truth.sum()),
            ", ".join(f"{n} {f:.3f} / {a:.3f}" for n, (f, a) in measured.items()),
            chosen,
        )
        pick, reviewed = real[chosen], None
        if ctx.reviewed is not None:
            pick, reviewed = by_reviews(real, ctx.reviewed, chosen)
        seconds = round(time.perf_counter() - t0, 2)
        log.info("ensemble: %s flags %d rows; in %.1fs", pick.detector, int(pick.is_issue.sum()), seconds)
        extra = {k: v for k, v in cl.extra.items() if k != "filter_by"}
        extra["candidates"] = real
        extra["ensemble"] = {
            "chosen": pick.detector,
            "by": "reviewed" if reviewed and reviewed["used"] else "planted",
            "planted_choice": chosen,
            "planted_rows": int(truth.sum()),
            "rounds": len(runs),
            "planted_share": self.plant,
            "planted_f1": {n: f for n, (f, _) in measured.items()},
            "planted_ap": {n: a for n, (_, a) in measured.items()},
            "flagged": {n: int(d.is_issue.sum()) for n, d in real.items()},
            "reviewed": reviewed,
            "seconds": seconds,
        }
        if reviewed and reviewed["used"]:  # the reviewed rows estimate how many labels are wrong
            extra["num_label_issues_estimate"] = reviewed["estimated_errors"]
        elif pick.detector != "confident_learning":
            extra["num_label_issues_estimate"] = int(pick.is_issue.sum())
        return Detection(self.name, pick.score, pick.is_issue, pick.suggested_label, extra)


def by_reviews(candidates: dict[str, Detection], reviewed: ReviewedSample, planted_choice: str) -> tuple[Detection, dict]:
    """The candidate of best F1 estimated on the ``reviewed`` rows, with its own flags or with the number of rows
    to flag that the reviews favour (``candidate@n``), and the estimates (the manifest's ``ensemble.reviewed``).
    The planted choice stands when the reviews are too few (``MIN_REVIEWED`` rows, ``MIN_WRONG`` wrong)."""
    own = {name: reviewed.estimates(d.is_issue) for name, d in candidates.items()}
    cuts = {name: reviewed.best_cut(d.score) for name, d in candidates.items()}
    n_wrong = int(reviewed.wrong.sum())
    info = {
        "samples": reviewed.samples,
        "rows": int(len(reviewed.rows)),
        "wrong": n_wrong,
        "estimated_errors": int(round(float(reviewed.weight @ reviewed.wrong))),
        "estimates": own,
        "best_cut": {name: {"flag": n, "f1": f1} for name, (n, f1) in cuts.items()},
        "used": len(reviewed.rows) >= MIN_REVIEWED and n_wrong >= MIN_WRONG,
    }
    if not info["used"]:
        log.info(
            "ensemble: %d reviewed rows of a detector sample (%d wrong): too few to choose by (%d rows and %d wrong at least); shown only",
            len(reviewed.rows),
            n_wrong,
            MIN_REVIEWED,
            MIN_WRONG,
        )
        return candidates[planted_choice], info
    options = {name: est["f1"] for name, est in own.items()}
    options.update({f"{name}@{n}": f1 for name, (n, f1) in cuts.items() if f1 > own[name]["f1"]})
    best = max(options, key=lambda o: (options[o], "@" not in o))  # a tie goes to a candidate's own flags
    name, _, cut = best.partition("@")
    d = candidates[name]
    pick = Detection(best, d.score, _lowest(d.score, int(cut)) if cut else d.is_issue, d.suggested_label)
    info["chosen"] = best
    log.info(
        "ensemble: %d reviewed rows (%d wrong, about %d wrong labels in all); estimated F1 %s; chose %s (F1 %.3f)",
        len(reviewed.rows),
        n_wrong,
        info["estimated_errors"],
        ", ".join(f"{n} {f:.3f}" for n, f in options.items()),
        best,
        options[best],
    )
    return pick, info


def describe(e: dict) -> str:
    """The manifest's ``audit.ensemble`` for people: the choice, and what it was measured on."""
    scored = ", ".join(f"{n} {e['planted_f1'][n]:.3f} / {e['planted_ap'][n]:.3f}" for n in e["planted_f1"])
    by = "the reviewed rows" if e.get("by") == "reviewed" else "F1 on the planted errors"
    line = f"{e['chosen']} chosen by {by}; F1 / AP on {e['planted_rows']:,} errors planted in the data ({e['rounds']} rounds): {scored}"
    r = e.get("reviewed")
    if r:
        line += (
            f"; on {r['rows']:,} reviewed rows of a detector sample ({r['wrong']:,} wrong, about {r['estimated_errors']:,} wrong labels in all),"
            f" estimated precision / recall / F1: "
            + ", ".join(f"{n} {x['precision']:.3f} / {x['recall']:.3f} / {x['f1']:.3f}" for n, x in r["estimates"].items())
        )
        if not r["used"]:
            line += f" (too few reviews to choose by: {MIN_REVIEWED} rows and {MIN_WRONG} wrong at least)"
    return line
