"""Labels known to be wrong, for weighing the judges: a sample of rows is asked about again under another class.

The ``calibrated`` aggregation (``labelq.judges.ensemble.calibrated``) learns from each judge's answers on
the same rows under their given label (almost always right: they are drawn from the rows confident learning
did not flag) and under a planted wrong one. The rows are drawn per given class, so that every class is
judged both as a given and as a planted label: a judge that simply prefers one class cannot pass for one
that tells right from wrong. The planted class is drawn in proportion to the model's probabilities of the
other classes, so planted errors look like the confusions the data has, not uniform noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from .. import schema as S
from .config import JudgeConfig
from .runner import VOTES_SCHEMA, is_choose, run_judges

PLANTED_ROWS = 100  # rows asked about under a planted label: one more request per judge and row


def calibration_rows(labels: np.ndarray, unflagged: np.ndarray, flagged: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` row positions, as evenly over the given classes as the rows allow.

    Each class takes its share from ``unflagged`` (rows whose label is probably right) first, in random
    order, and tops up from ``flagged`` only where it has too few unflagged rows. Sorted positions.
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(labels[np.concatenate([unflagged, flagged])])
    if n <= 0 or not len(classes):
        return np.zeros(0, dtype=np.int64)
    pools = [np.concatenate([rng.permutation(unflagged[labels[unflagged] == c]), rng.permutation(flagged[labels[flagged] == c])]) for c in classes]
    chosen: list[np.ndarray] = []
    left = n
    # smallest pools first, so what a small class cannot fill goes to the others
    for i, pool in enumerate(sorted(pools, key=len)):
        take = min(len(pool), left // (len(pools) - i))
        chosen.append(pool[:take])
        left -= take
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def planted_labels(labels: np.ndarray, probs: np.ndarray, seed: int) -> np.ndarray:
    """A class other than ``labels[i]`` for each row, drawn in proportion to ``probs[i]`` over the other classes
    (uniformly where the model gives them nothing)."""
    rng = np.random.default_rng(seed)
    weights = np.asarray(probs, dtype=float).copy()
    weights[np.arange(len(labels)), labels] = 0.0
    empty = weights.sum(axis=1) <= 0
    weights[empty] = 1.0
    weights[empty, labels[empty]] = 0.0
    weights /= weights.sum(axis=1, keepdims=True)
    return np.array([rng.choice(weights.shape[1], p=w) for w in weights], dtype=np.int64)


def planted_votes(
    examples: pa.Table,
    judges: Sequence[JudgeConfig],
    rows: np.ndarray,
    planted: np.ndarray,
    cache_path: Path | None,
    seed: int,
    submit: Callable | None = None,
    batch_rows: int = 64,
    given_votes: pa.Table | None = None,
) -> tuple[pa.Table, list[dict]]:
    """Every judge's vote on ``rows`` of ``examples`` with their labels replaced by ``planted``: the
    ``judge_votes`` columns plus ``given_label`` and ``planted_label``, and the runs' stats. The vote cache keys on
    the label, so these votes never stand in for the given label's, and a rerun asks nothing.

    A multiple-choice judge's prompt does not name the label, so it is not asked again: its vote on the given
    label (in ``given_votes``) already holds its probability of every class (``class_probs``), read here for
    the planted one (stats: ``derived``). Only where that vote lacks them (a cache from before) is it asked."""
    ids = examples[S.ID].take(pa.array(rows)).to_pylist()
    derived = _derived_votes([j for j in judges if is_choose(j)], ids, planted, given_votes)
    asked = [j for j in judges if j.name not in derived]
    votes, stats = pa.Table.from_pylist([], schema=VOTES_SCHEMA), []
    if asked:
        labels = examples[S.LABEL].to_numpy().copy()
        labels[rows] = planted
        votes, stats = run_judges(S.replace_columns(examples, {S.LABEL: pa.array(labels)}), asked, ids, cache_path, seed, submit=submit, batch_rows=batch_rows)
    for name, table in derived.items():  # what ``with_planted`` reads of a run: nothing was asked, nothing cost
        votes = pa.concat_tables([votes, table])
        stats.append(
            {"judge": name, "examples": len(ids), "asked": 0, "derived": len(ids), "seconds": 0.0, "prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0}
        )
    order = {v: i for i, v in enumerate(ids)}
    at = np.array([order[i] for i in votes[S.ID].to_pylist()], dtype=np.int64)
    given = examples[S.LABEL].to_numpy()[rows]
    votes = votes.append_column("given_label", pa.array(given[at], pa.int64())).append_column("planted_label", pa.array(planted[at], pa.int64()))
    by_name = {st["judge"]: st for st in stats}
    return votes, [by_name[j.name] for j in judges]


def _derived_votes(choosers: list[JudgeConfig], ids: list[str], planted: np.ndarray, given_votes: pa.Table | None) -> dict[str, pa.Table]:
    """For each multiple-choice judge whose votes on ``ids`` all hold ``class_probs``: its votes for the ``planted``
    labels, read from them (no request; ``cached`` is true, latency and tokens 0)."""
    if given_votes is None or not choosers or "class_probs" not in given_votes.column_names:
        return {}
    out = {}
    records = given_votes.to_pylist()
    for judge in choosers:
        mine = {r[S.ID]: r for r in records if r["judge"] == judge.name}
        if not all(i in mine and mine[i]["class_probs"] for i in ids):
            continue
        rows = []
        for i, label in zip(ids, planted.tolist()):
            vote = mine[i]
            probs = vote["class_probs"]
            proposed = vote["proposed_label"]
            verdict = "no_class" if proposed == -1 else ("correct" if proposed == label else "wrong")
            rows.append(
                {
                    **vote,
                    "p_label_correct": float(probs[label]),
                    "verdict": verdict,
                    "latency_ms": 0.0,
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "cached": True,
                }
            )
        out[judge.name] = pa.Table.from_pylist(rows, schema=VOTES_SCHEMA)
    return out


def with_planted(stats: list[dict], planted: list[dict]) -> list[dict]:
    """Each judge's run stats with its planted-label run's added: ``planted_asked`` and ``planted_seconds``
    on their own, and its tokens, cost and seconds in the judge's totals (what the judge cost, all told)."""
    by_judge = {p["judge"]: p for p in planted}
    out = []
    for st in stats:
        p = by_judge.get(st["judge"])
        if p is None:
            out.append(st)
            continue
        out.append(
            {
                **st,
                "planted_rows": p["examples"],
                "planted_asked": p["asked"],
                "planted_derived": p.get("derived", 0),
                "planted_seconds": p["seconds"],
                "seconds": round(st["seconds"] + p["seconds"], 2),
                "prompt_tokens": st["prompt_tokens"] + p["prompt_tokens"],
                "completion_tokens": st["completion_tokens"] + p["completion_tokens"],
                "cost": round(st["cost"] + p["cost"], 6),
            }
        )
    return out
