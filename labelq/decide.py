"""Decide: detections -> the issues table and the audit columns added to every published row.

Rule (one detector today, written for several): a row is a label issue when any detector flags it;
its ``label_score`` is the lowest detector score and its ``suggested_label`` comes from that detector.
``issue_rank`` orders flagged rows by ``label_score`` (1 = most likely wrong); other rows get null.
With LLM judges, the one detector passed here is their ensemble with confident learning
(``labelq.judges.ensemble``), and ``issue_kind`` can be ``out_of_distribution``.
``corrected_label`` is filled only under an explicit ``AutoFix`` policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from . import schema as S
from .detect import Detection
from .detect.neighbors import NeighborChecks
from .detect.streaming_cl import ProbsChunks, take_rows
from .errors import InputError
from .kinds import audit_kinds
from .labelkind import kind_of
from .multilabel import sure_tags, tag_lists
from .options import option
from .validation import check_fraction


@dataclass(frozen=True)
class AutoFix:
    """Replace a flagged label by the suggestion when the model gives the suggestion at least ``min_confidence``."""

    min_confidence: float = option(
        "--auto-fix",
        dest="auto_fix_min_confidence",
        nargs=2,
        type=(str, float),
        from_cli=lambda v: _min_confidence(*v) if v else None,
        help="Fill corrected_label for flagged rows, e.g. --auto-fix min-confidence 0.95.",
    )

    def __post_init__(self) -> None:
        check_fraction(self.min_confidence, "auto-fix min-confidence")

    def describe(self) -> dict:
        return {"policy": "min-confidence", "min_confidence": self.min_confidence}


def _min_confidence(policy: str, value: float) -> float:
    if policy != "min-confidence":
        raise InputError(f"unknown auto-fix policy {policy!r}", "use --auto-fix min-confidence 0.95")
    return value


@dataclass
class Decision:
    """Arrays of shape ``(N,)``; ``issue_rank`` is 0 where a row is not flagged. For a multi-label dataset
    ``suggested_label`` is the ``(N, K)`` suggested tags, ``corrected_label`` ``(N, K)`` int8 (a corrected
    row's tags as 0/1, -1 in every column of a row not corrected), and ``missing``/``extra`` ``(N, K)`` the
    flagged tags a row lacks or holds wrongly."""

    label_score: np.ndarray
    is_label_issue: np.ndarray
    suggested_label: np.ndarray
    issue_rank: np.ndarray
    corrected_label: np.ndarray  # -1 where not corrected (a value a row: NaN)
    no_class: np.ndarray | None = None  # flagged rows that fit no class (issue_kind out_of_distribution)
    missing: np.ndarray | None = None
    extra: np.ndarray | None = None

    @property
    def corrected_rows(self) -> np.ndarray:
        """``(N,)`` bool: the rows an auto-fix corrected (a value a row: NaN where not corrected)."""
        if self.corrected_label.dtype.kind == "f":
            return ~np.isnan(self.corrected_label)
        fixed = self.corrected_label >= 0
        return fixed.any(axis=1) if fixed.ndim == 2 else fixed


def decide(detections: list[Detection], pred_probs: np.ndarray | ProbsChunks, auto_fix: AutoFix | None = None, no_class: np.ndarray | None = None) -> Decision:
    """Combine ``detections`` by the rule above; ``no_class`` ``(N,)`` marks rows no class fits (from judges)."""
    if len(detections) == 1:  # the common case, without N x D copies
        label_score, is_issue, suggested = detections[0].score, detections[0].is_issue, detections[0].suggested_label
    else:
        scores = np.column_stack([d.score for d in detections])
        lowest = scores.argmin(axis=1)
        label_score = scores[np.arange(len(scores)), lowest]
        is_issue = np.column_stack([d.is_issue for d in detections]).any(axis=1)
        suggested = np.column_stack([d.suggested_label for d in detections])[np.arange(len(scores)), lowest]
    n = len(label_score)
    rank = np.zeros(n, dtype=np.int64)
    flagged = np.flatnonzero(is_issue)
    rank[flagged[np.argsort(label_score[flagged], kind="stable")]] = np.arange(1, len(flagged) + 1)
    corrected = np.full(n, -1, dtype=np.int64)
    if auto_fix is not None:
        sure = is_issue & (take_rows(pred_probs, suggested) >= auto_fix.min_confidence)
        corrected[sure] = suggested[sure]
    return Decision(label_score, is_issue, suggested, rank, corrected, no_class)


def decide_tags(detection: Detection, pred_probs: np.ndarray, auto_fix: AutoFix | None = None) -> Decision:
    """The decision on a multi-label dataset (``labelq.detect.multilabel``): flags and ranks as ``decide``;
    an auto-fix turns over each flagged tag the model holds with at least ``min_confidence`` (a missing tag's
    probability, or an extra tag's 1 - probability), and a row with any such tag is corrected."""
    decision = decide([detection], pred_probs)
    missing, extra = detection.extra["missing"], detection.extra["extra"]
    tags = detection.suggested_label ^ (missing | extra)  # the given tags
    corrected = np.full(tags.shape, -1, dtype=np.int8)
    if auto_fix is not None:
        sure = sure_tags(tags, missing | extra, np.asarray(pred_probs), auto_fix.min_confidence)
        rows = sure.any(axis=1)
        corrected[rows] = (tags[rows] ^ sure[rows]).astype(np.int8)
    decision.corrected_label, decision.missing, decision.extra = corrected, missing, extra
    return decision


def audited_table(examples: pa.Table, decision: Decision, duplicates: NeighborChecks | None = None) -> pa.Table:
    """The examples table, untouched, with the audit columns appended (metadata kept); the near-duplicate
    and outlier columns are null without ``duplicates`` (not checked)."""
    n = examples.num_rows
    suggested, corrected = kind_of(examples).decision_columns(decision)
    cols = {
        S.LABEL_SCORE: pa.array(decision.label_score, pa.float64()),
        S.IS_LABEL_ISSUE: pa.array(decision.is_label_issue, pa.bool_()),
        S.SUGGESTED_LABEL: suggested,
        S.ISSUE_RANK: pa.array(decision.issue_rank, pa.int64(), mask=decision.issue_rank == 0),
        S.ISSUE_KIND: audit_kinds(decision.is_label_issue, decision.no_class),
        S.CORRECTED_LABEL: corrected,
        S.IS_NEAR_DUPLICATE: pa.nulls(n, pa.bool_()) if duplicates is None else pa.array(duplicates.is_near_duplicate, pa.bool_()),
        S.NEAR_DUPLICATE_SET: pa.nulls(n, pa.list_(pa.string())) if duplicates is None else duplicates.set_ids_column(examples[S.ID]),
        S.IS_OUTLIER: pa.nulls(n, pa.bool_()) if duplicates is None else pa.array(duplicates.is_outlier, pa.bool_()),
        S.OUTLIER_SCORE: pa.nulls(n, pa.float64()) if duplicates is None else pa.array(duplicates.outlier_score, pa.float64()),
    }
    if decision.missing is not None:
        cols[S.MISSING_TAGS], cols[S.EXTRA_TAGS] = tag_lists(decision.missing), tag_lists(decision.extra)
    out = examples
    for name, arr in cols.items():
        assert len(arr) == n
        out = out.append_column(name, arr)
    return S.with_info(out, S.info_of(examples))


def issues_table(audited: pa.Table, detections: list[Detection], duplicates: NeighborChecks | None = None) -> pa.Table:
    """The contract's issues table (flagged and unflagged rows), with each detector's score and flags as evidence
    (an ensemble's candidates' too),
    and with ``duplicates``, each row's near-duplicate set and whether the set holds an exact copy of the
    row (``duplicate_exact``), spans splits (``duplicate_leak``) or carries several labels (``duplicate_conflict``),
    and whether the row is an outlier, with its score.

    It holds what the audit decided and why; ``issue_kind``, which re-labeling and review refine, lives
    in the data only."""
    cols = {
        S.ID: audited[S.ID],
        "given_label": audited[S.LABEL],
        S.SUGGESTED_LABEL: audited[S.SUGGESTED_LABEL],
        S.LABEL_SCORE: audited[S.LABEL_SCORE],
        S.IS_LABEL_ISSUE: audited[S.IS_LABEL_ISSUE],
    }
    for name in S.MULTI_LABEL_COLUMNS:
        if name in audited.column_names:
            cols[name] = audited[name]
    candidates = [c for d in detections for c in d.extra.get("candidates", {}).values()]  # an ensemble's
    for d in [*detections, *candidates]:
        cols[f"score_{d.detector}"] = pa.array(d.score, pa.float64())
        cols[f"flag_{d.detector}"] = pa.array(d.is_issue, pa.bool_())
    if duplicates is not None:
        cols[S.IS_NEAR_DUPLICATE] = audited[S.IS_NEAR_DUPLICATE]
        cols[S.NEAR_DUPLICATE_SET] = audited[S.NEAR_DUPLICATE_SET]
        cols["duplicate_exact"] = pa.array(duplicates.exact, pa.bool_())
        cols["duplicate_leak"] = pa.array(duplicates.leak, pa.bool_())
        cols["duplicate_conflict"] = pa.array(duplicates.conflict, pa.bool_())
        cols[S.IS_OUTLIER] = audited[S.IS_OUTLIER]
        cols[S.OUTLIER_SCORE] = audited[S.OUTLIER_SCORE]
    return pa.table(cols)
