"""Re-label a published version: issue kinds, corrections, label sets and soft labels -> a new version.

``relabel(RelabelConfig(name=...))`` reads a version (the latest by default) with its pred_probs, its
confident-learning output and its judge votes when it has them, and publishes a new version whose rows
keep the given ``label`` and add:

- ``issue_kind``: ``ok``, ``wrong_label``, ``multi_label``, ``out_of_distribution`` or ``ambiguous``
  (``labelq.kinds``);
- ``corrected_label``: the confident correction of ``wrong_label`` rows (``label_source`` =
  ``relabel``), or a person's (``label_source`` = ``review``; never overwritten by a later re-label);
- ``labels``: the conformal label set of every row (``labelq.relabel.label_sets``) at the stated
  coverage, calibrated on a seeded random half of the held-out rows that were not flagged (or on all
  rows, or on the reviewed rows); the other half measures the coverage, written to the manifest. The
  pred_probs are out-of-sample, so every row is held out from the model that scored it;
- ``soft_label``: a probability vector: ``weight_label`` on the current label (corrected where there
  is a correction), the rest from pred_probs, averaged with the judges' proposals where they voted.
  A reviewed row's soft label is uniform over the reviewer's labels.

The parent version is never changed; the manifest records the parent, the settings and the counts.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import schema as S
from ..errors import InputError
from ..kinds import KindRule, Kinds, classify, noise_aware
from ..labelkind import kind_of
from ..manifest import RelabelSection, RunSection
from ..multilabel import TAGS_TYPE, effective_tags, sure_tags, tag_lists, tag_matrix
from ..options import option
from ..precision import FixRule, candidates, check_target, choose_rule
from ..predict import pred_probs_array
from ..runner import InProcess, Runner, step
from ..store import Store, Version
from ..validation import check_fraction
from .label_sets import ConformalLabelSets, coverage, soft_labels

log = logging.getLogger(__name__)

CALIBRATION = ("unflagged", "all", "reviewed")


@dataclass
class RelabelConfig:
    """Settings of a re-labeling run (``labelq relabel NAME``)."""

    name: str
    store: str | None = None
    version: int | str | None = option("--version", help="Version to re-label (default: latest).")
    coverage: float = option("--coverage", default=0.9, type=float, show_default=True, help="Target coverage of the label sets.")
    score: str = option("--score", default="lac", choices=("lac", "aps"), show_default=True, help="Conformal score.")
    class_conditional: bool = option("--class-conditional", default=False, is_flag=True, help="Coverage within every class (Mondrian), not only on average.")
    calibration: str = option("--calibration", default="unflagged", choices=CALIBRATION, show_default=True, help="Rows to calibrate the label sets on.")
    fix_confidence: float = option(
        "--fix-confidence",
        default=0.9,
        type=float,
        show_default=True,
        help="Probability of the other class needed for a correction without --target-precision (no guarantee: see docs/relabeling.md).",
    )
    both_min: float = 0.25
    pair_mass: float = 0.9
    noise_aware: bool = option("--noise-aware", default=False, is_flag=True, help="Weigh the given label as evidence (confident learning's noise matrix).")
    weight_label: float = option(
        "--weight-label", default=0.5, type=float, show_default=True, help="Weight of the (corrected) label in the soft label; the rest is the model's."
    )
    seed: int = option("--seed", default=0, type=int, show_default=True, help="Seed of the label sets' calibration split.")
    target_precision: float | None = option(
        "--target-precision",
        type=float,
        help="Correct only by a rule whose precision is at least this, with --confidence, as shown by the reviewed calibration sample (labelq review export --sample).",
    )
    confidence: float = option("--confidence", default=0.9, type=float, show_default=True, help="Confidence of the --target-precision guarantee.")
    tolerance: str | None = option(
        "--tolerance",
        help="A regression target: how far a given value may be from the truth and still be right, a number (absolute) or a share of the value "
        "(10%%); a correction is right when the given value was off by more. Default: the residuals' spread (1.4826 x MAD).",
    )

    def __post_init__(self) -> None:
        check_fraction(self.weight_label, "weight_label")
        self.tolerance_rule = Tolerance.parse(self.tolerance) if self.tolerance is not None else None
        check_target(self.target_precision, self.confidence)
        if self.calibration not in CALIBRATION:
            raise InputError(f"unknown calibration {self.calibration!r}", f"use one of {list(CALIBRATION)}")
        self.rule = KindRule(self.fix_confidence, self.both_min, self.pair_mass)
        self.sets = ConformalLabelSets(
            alpha=round(1 - check_fraction(self.coverage, "coverage"), 12), score=self.score, class_conditional=self.class_conditional, seed=self.seed
        )

    def open_store(self) -> Store:
        return Store(self.store)

    def settings(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("store", "name")}


@dataclass(frozen=True)
class Tolerance:
    """How far a given value may be from the truth and still be right: ``amount`` absolute, or a share of the value (``relative``)."""

    amount: float
    relative: bool = False

    @classmethod
    def parse(cls, text: str | float) -> Tolerance:
        raw = str(text).strip()
        relative = raw.endswith("%")
        try:
            amount = float(raw[:-1] if relative else raw)
        except ValueError:
            amount = float("nan")
        if not np.isfinite(amount) or amount < 0:
            raise InputError(
                f"tolerance {text!r} is not a number >= 0 or a percentage", "write e.g. --tolerance 5 (absolute) or --tolerance 10% (of the value)"
            )
        return cls(amount / 100 if relative else amount, relative)

    def of(self, values: np.ndarray) -> np.ndarray:
        """The tolerance around each of ``values``."""
        return self.amount * np.abs(values) if self.relative else np.full(len(values), self.amount)

    def describe(self) -> str:
        return f"{100 * self.amount:g}% of the value" if self.relative else f"{self.amount:g}"


@dataclass
class RelabelResult:
    version: Version
    parent: Version
    kinds: dict[str, int]
    n_corrected: int
    coverage: float | None
    mean_set_size: float | None  # None: a kind without label sets (a regression target)


@step("load-version")
def load_step(cfg: RelabelConfig) -> Version:
    return cfg.open_store().version(cfg.name, cfg.version)


def judge_evidence(version: Version, ids: list[str], n_classes: int):
    """The judges' evidence (``labelq.judges.ensemble.JudgeEvidence``) stored with ``version``, or None without votes."""
    if not (version.path / "judge_votes.parquet").exists():
        return None
    votes = version.read_table("judge_votes")
    if votes.num_rows == 0:
        return None
    from ..judges.ensemble import judge_evidence as evidence_of

    return evidence_of(votes, ids, n_classes)


def _column(table: pa.Table, name: str, default: pa.Array) -> pa.Array:
    return table[name].combine_chunks() if name in table.column_names else default


@step("relabel")
def relabel_step(cfg: RelabelConfig, parent: Version) -> tuple[pa.Table, dict]:
    """The parent's rows with the re-labeling columns (replaced where the parent had them), and the manifest's
    changes (``relabel`` section and counts, for ``Store.derive``)."""
    rows = parent.read()
    pp = parent.read_table("pred_probs")
    if pp[S.ID].to_pylist() != rows[S.ID].to_pylist():
        raise InputError(f"{parent.name} {parent.tag}: pred_probs.parquet does not match the rows", "re-run the audit; the version folder was changed by hand")
    return kind_of(rows).relabel(cfg, parent, rows, pred_probs_array(pp).astype(np.float64))


def relabel_classes(cfg: RelabelConfig, parent: Version, rows: pa.Table, probs: np.ndarray) -> tuple[pa.Table, dict]:
    """Re-label a version of one class a row: issue kinds (``labelq.kinds``), corrections (by ``--fix-confidence``,
    or certified by a reviewed sample with ``--target-precision``), label sets and soft labels. Reviewed rows keep their review."""
    k = len(S.info_of(rows).class_names)
    labels = rows[S.LABEL].to_numpy()
    flagged = rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)
    n = len(labels)
    ids = rows[S.ID].to_pylist()

    evidence = probs
    if cfg.noise_aware:
        noise = parent.noise()
        if noise is None:
            raise InputError(f"{parent.name} {parent.tag} has no noise matrix (noise.parquet)", "leave --noise-aware out, or re-run the audit")
        evidence = noise_aware(probs, labels, noise[1])
    judges = judge_evidence(parent, ids, k)
    kinds: Kinds = classify(
        evidence, labels, flagged, cfg.rule, **(dict(no_class=judges.no_class, judge_choice=judges.choice, judge_accepts=judges.accepts) if judges else {})
    )

    # a person's word stands: reviewed rows keep their review
    source = np.asarray(_column(rows, S.LABEL_SOURCE, pa.nulls(n, pa.string())).to_pylist(), dtype=object)
    reviewed = source == "review"
    old_corrected = S.corrections(rows)
    old_labels = _column(rows, S.LABELS, pa.nulls(n, pa.list_(pa.int64()))).to_pylist()
    old_kind = np.asarray(rows[S.ISSUE_KIND].to_pylist(), dtype=object)
    proposed_kind, proposed = kinds.kind, kinds.correction
    fix_rule = None
    if cfg.target_precision is not None:  # only what a random reviewed sample shows to be right often enough
        fix_rule, proposed = verified_corrections(cfg, parent, rows, evidence, labels, flagged, reviewed, old_labels)
        proposed_kind = np.where(proposed >= 0, "wrong_label", proposed_kind)
    elif not parent.manifest().audit.reliable:
        log.warning("%s %s: the model is no better than the class prior; no correction is made without --target-precision", parent.name, parent.tag)
        proposed = np.full(n, -1)
    kind = np.where(reviewed, old_kind, proposed_kind)
    corrected = np.where(reviewed, old_corrected, proposed)
    source = np.where(reviewed, "review", np.where(corrected >= 0, "relabel", None))

    # label sets
    cal, held = _calibration_rows(cfg, flagged, reviewed, labels, old_labels, old_corrected)
    cal_labels = S.effective_label(labels[cal], old_corrected[cal])
    sets = cfg.sets.fit(probs[cal], cal_labels)
    member = sets.predict(probs)
    measured = coverage(member[held], labels[held]) if len(held) else None
    label_sets = [np.flatnonzero(m).tolist() for m in member]
    for i in np.flatnonzero(reviewed):
        label_sets[i] = old_labels[i] if old_labels[i] is not None else ([int(old_corrected[i])] if old_corrected[i] >= 0 else [int(labels[i])])

    # soft labels
    current = S.effective_label(labels, corrected)
    model = probs
    if judges is not None:
        hist = judges.proposal_hist
        voted = hist.sum(axis=1) > 0
        model = probs.copy()
        model[voted] = 0.5 * probs[voted] + 0.5 * hist[voted] / hist[voted].sum(axis=1, keepdims=True)
    soft = soft_labels(model, current, cfg.weight_label)
    for i in np.flatnonzero(reviewed):
        if label_sets[i]:
            soft[i] = 0.0
            soft[i, label_sets[i]] = 1.0 / len(label_sets[i])

    replace = {
        S.ISSUE_KIND: pa.array(kind.tolist(), pa.string()),
        S.CORRECTED_LABEL: pa.array(corrected, pa.int64(), mask=corrected < 0),
        S.LABELS: pa.array(label_sets, pa.list_(pa.int64())),
        S.SOFT_LABEL: pa.array(list(soft.astype(np.float32)), pa.list_(pa.float32(), k)),
        S.LABEL_SOURCE: pa.array(source.tolist(), pa.string()),
        S.REVIEWER: _column(rows, S.REVIEWER, pa.nulls(n, pa.string())),
        S.REVIEWED_AT: _column(rows, S.REVIEWED_AT, pa.nulls(n, pa.timestamp("us", tz="UTC"))),
    }
    out = S.with_info(S.replace_columns(rows, replace), S.info_of(rows))
    names, counts = np.unique(kind.astype(str), return_counts=True)
    sizes = member.sum(axis=1)
    changes = {
        "relabel": RelabelSection(
            parent=parent.tag,
            kinds={str(a): int(b) for a, b in zip(names, counts)},
            n_calibration=int(len(cal)),
            coverage_target=cfg.coverage,
            coverage_measured=measured,
            n_coverage_rows=int(len(held)),
            mean_set_size=float(sizes.mean()),
            mean_set_size_flagged=float(sizes[flagged].mean()) if flagged.any() else None,
            thresholds=sets.thresholds_.tolist(),
            judge_evidence=judges is not None,
            guarantee=fix_rule.describe() if fix_rule else None,
            extra=cfg.settings(),
        ),
        "n_label_issues": int(flagged.sum()),
        "n_corrected": int((corrected >= 0).sum()),
        "corrections": S.correction_counts(out),
    }
    return out, changes


def relabel_tags(cfg: RelabelConfig, parent: Version, rows: pa.Table, probs: np.ndarray) -> tuple[pa.Table, dict]:
    """Re-label a multi-label version: each flagged row's tags flagged missing or extra are turned over when
    the model holds the other value with at least ``fix_confidence`` (a missing tag's probability, an extra
    tag's 1 - probability); a row with any such tag gets the corrected tag set (``label_source`` = ``relabel``,
    ``issue_kind`` = ``wrong_label``), a flagged row with none stays ``ambiguous``. ``labels`` is every row's
    tag set after re-labeling and ``soft_label`` each tag's probability, ``weight_label`` on the current tags
    and the rest from the model. Reviewed rows keep their review."""
    k = probs.shape[1]
    n = rows.num_rows
    tags = tag_matrix(rows[S.LABEL], k)
    flagged = rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)
    doubt = tag_matrix(rows[S.MISSING_TAGS], k) | tag_matrix(rows[S.EXTRA_TAGS], k)
    source = np.asarray(_column(rows, S.LABEL_SOURCE, pa.nulls(n, pa.string())).to_pylist(), dtype=object)
    reviewed = source == "review"
    fix_rule = None
    if cfg.target_precision is not None:  # only the flips a random reviewed sample of flips shows to be right often enough
        fix_rule, sure = verified_flips(cfg, parent, rows, tags, doubt, probs, flagged, reviewed)
    else:
        sure = sure_tags(tags, doubt, probs, cfg.fix_confidence)
    if not parent.manifest().audit.reliable and fix_rule is None:
        log.warning("%s %s: the model is no better than the class prior; no correction is made", parent.name, parent.tag)
        sure[:] = False
    fixed = sure.any(axis=1) & flagged & ~reviewed
    old = rows[S.CORRECTED_LABEL].combine_chunks()
    corrected = pa.array([old[i].as_py() if reviewed[i] else None for i in range(n)], TAGS_TYPE)
    corrected = pc.if_else(pa.array(fixed), tag_lists(tags ^ sure), corrected)
    current = effective_tags(tags, corrected)
    kind = np.where(fixed, "wrong_label", np.where(flagged, "ambiguous", "ok"))
    kind = np.where(reviewed, np.asarray(rows[S.ISSUE_KIND].to_pylist(), dtype=object), kind)
    source = np.where(reviewed, "review", np.where(fixed, "relabel", None))
    soft = cfg.weight_label * current + (1 - cfg.weight_label) * probs
    replace = {
        S.ISSUE_KIND: pa.array(kind.tolist(), pa.string()),
        S.CORRECTED_LABEL: corrected,
        S.LABELS: tag_lists(current),
        S.SOFT_LABEL: pa.array(list(soft.astype(np.float32)), pa.list_(pa.float32(), k)),
        S.LABEL_SOURCE: pa.array(source.tolist(), pa.string()),
        S.REVIEWER: _column(rows, S.REVIEWER, pa.nulls(n, pa.string())),
        S.REVIEWED_AT: _column(rows, S.REVIEWED_AT, pa.nulls(n, pa.timestamp("us", tz="UTC"))),
    }
    out = S.with_info(S.replace_columns(rows, replace), S.info_of(rows))
    names, counts = np.unique(kind.astype(str), return_counts=True)
    sizes = current.sum(axis=1)
    log.info(
        "%s %s: %d of %d flagged rows corrected (%d tags turned over)", parent.name, parent.tag, int(fixed.sum()), int(flagged.sum()), int(sure[fixed].sum())
    )
    changes = {
        "relabel": RelabelSection(
            parent=parent.tag,
            kinds={str(a): int(b) for a, b in zip(names, counts)},
            mean_set_size=float(sizes.mean()) if n else 0.0,
            mean_set_size_flagged=float(sizes[flagged].mean()) if flagged.any() else None,
            guarantee=fix_rule.describe() if fix_rule else None,
            extra={**cfg.settings(), "tags_turned_over": int(sure[fixed].sum())},
        ),
        "n_label_issues": int(flagged.sum()),
        "n_corrected": int(len(corrected) - corrected.null_count),
        "corrections": S.correction_counts(out),
    }
    return out, changes


def relabel_values(cfg: RelabelConfig, parent: Version, rows: pa.Table, probs: np.ndarray) -> tuple[pa.Table, dict]:
    """Re-label a regression target: a flagged value is replaced by its prediction when the prediction is more than
    the tolerance away from it (``--tolerance``) and the detector's mixture gives the value at least
    ``--fix-confidence`` of being unrelated to the inputs; with ``--target-precision``, at the threshold of that
    probability that the reviewed calibration sample certifies (a correction is right when the reviewed value is
    more than the tolerance from the given one). Reviewed rows keep their review; ``labels`` and ``soft_label``
    stay null (they are sets and distributions over classes)."""
    from ..detect.regression import detect_regression, robust_scale

    n = rows.num_rows
    given, pred = rows[S.LABEL].to_numpy().astype(np.float64), probs[:, 0]
    flagged = rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)
    found = detect_regression(given, pred)
    tolerance = cfg.tolerance_rule or Tolerance(robust_scale(given - pred))
    if cfg.tolerance_rule is None:
        log.info("tolerance: the residuals' spread, %.4g (pass --tolerance to state yours)", tolerance.amount)
    tol = tolerance.of(given)
    source = np.asarray(_column(rows, S.LABEL_SOURCE, pa.nulls(n, pa.string())).to_pylist(), dtype=object)
    reviewed = source == "review"
    apart = np.abs(given - pred) > tol  # a correction must move the value by more than the tolerance
    candidate = flagged & ~reviewed & apart
    score = np.where(apart, found.p_wrong, -1.0)  # rows no correction would move are never corrected
    fix_rule = None
    if cfg.target_precision is not None:
        from .samples import calibration_reviews

        sample, n_drawn = calibration_reviews(cfg.open_store(), rows, parent.name)
        if len(sample) == 0:
            raise InputError(
                f"{parent.name} {parent.tag} has no reviewed calibration sample: --target-precision needs people's values on a random sample of the flagged rows",
                f"run `labelq review export {parent.name} --sample 100 -o sample.json`, review it, `labelq review import {parent.name} FILE`, then relabel again",
            )
        truth = kind_of(rows).effective(rows)[sample]  # the reviewed value, else the given one (kept)
        right = np.abs(given[sample] - truth) > tol[sample]
        eligible = flagged & (~reviewed | np.isin(np.arange(n), sample))
        fix_rule = choose_rule(score[sample], right, score[eligible], cfg.target_precision, cfg.confidence, "p_wrong", n_drawn, unit="values")
        log.info("%s", fix_rule.summary())
        fix = candidate & (score >= fix_rule.threshold) if fix_rule.threshold is not None else np.zeros(n, bool)
    elif not parent.manifest().audit.reliable:
        log.warning("%s %s: the model is no better than the mean; no correction is made without --target-precision", parent.name, parent.tag)
        fix = np.zeros(n, bool)
    else:
        fix = candidate & (score >= cfg.fix_confidence)
    old = rows[S.CORRECTED_LABEL].to_numpy(zero_copy_only=False).astype(np.float64)
    corrected = np.where(reviewed, old, np.where(fix, pred, np.nan))
    old_kind = np.asarray(rows[S.ISSUE_KIND].to_pylist(), dtype=object)
    kind = np.where(reviewed, old_kind, np.where(fix, "wrong_label", np.where(flagged, "ambiguous", "ok")))
    source = np.where(reviewed, "review", np.where(fix, "relabel", None))
    replace = {
        S.ISSUE_KIND: pa.array(kind.tolist(), pa.string()),
        S.CORRECTED_LABEL: pa.array(corrected, pa.float64(), mask=np.isnan(corrected)),
        S.LABELS: _column(rows, S.LABELS, pa.nulls(n, pa.list_(pa.int64()))),
        S.SOFT_LABEL: _column(rows, S.SOFT_LABEL, pa.nulls(n, pa.list_(pa.float32(), 1))),
        S.LABEL_SOURCE: pa.array(source.tolist(), pa.string()),
        S.REVIEWER: _column(rows, S.REVIEWER, pa.nulls(n, pa.string())),
        S.REVIEWED_AT: _column(rows, S.REVIEWED_AT, pa.nulls(n, pa.timestamp("us", tz="UTC"))),
    }
    out = S.with_info(S.replace_columns(rows, replace), S.info_of(rows))
    names, counts = np.unique(kind.astype(str), return_counts=True)
    log.info("%s %s: %d of %d flagged values corrected (tolerance %s)", parent.name, parent.tag, int(fix.sum()), int(flagged.sum()), tolerance.describe())
    changes = {
        "relabel": RelabelSection(
            parent=parent.tag,
            kinds={str(a): int(b) for a, b in zip(names, counts)},
            guarantee=fix_rule.describe() if fix_rule else None,
            extra={**cfg.settings(), "tolerance": {"amount": tolerance.amount, "relative": tolerance.relative}},
        ),
        "n_label_issues": int(flagged.sum()),
        "n_corrected": int((~np.isnan(corrected)).sum()),
        "corrections": S.correction_counts(out),
    }
    return out, changes


def verified_flips(
    cfg: RelabelConfig, parent: Version, rows: pa.Table, tags: np.ndarray, doubt: np.ndarray, probs: np.ndarray, flagged: np.ndarray, reviewed: np.ndarray
) -> tuple[FixRule, np.ndarray]:
    """The tag flips that the calibration reviews support at ``cfg.target_precision``, as an ``(N, K)`` bool matrix.

    The unit is a (row, tag) flip: each tag flagged missing or extra on a flagged row, turned over. Calibration
    samples draw flips uniformly (``draw_sample``), a person reviews their rows' tag sets, and a drawn flip is
    right when the reviewed set holds the other value. Its score is the model's probability of that other value
    (a missing tag's probability, an extra tag's 1 - probability); ``choose_rule`` picks the threshold with
    Clopper-Pearson bounds and fixed-sequence testing, as for single labels. The rule flips the tags of rows
    nobody reviewed."""
    from .samples import calibration_units

    units, n_drawn = calibration_units(cfg.open_store(), rows, parent.name)
    if not units:
        raise InputError(
            f"{parent.name} {parent.tag} has no reviewed calibration sample: --target-precision needs people's answers on a random sample of the flagged tags",
            f"run `labelq review export {parent.name} --sample 100 -o sample.json`, review it, `labelq review import {parent.name} FILE`, then relabel again",
        )
    answer = effective_tags(tags, rows[S.CORRECTED_LABEL])  # a reviewed row's tags are its reviewer's
    score = np.where(tags, 1.0 - probs, probs)
    p, t = np.array([u[0] for u in units]), np.array([u[1] for u in units])
    right = answer[p, t] != tags[p, t]
    in_sample = np.zeros_like(doubt)
    in_sample[p, t] = True
    candidate = doubt & flagged[:, None]
    eligible = candidate & (~reviewed[:, None] | in_sample)  # the flips the samples were drawn from
    rule = choose_rule(score[p, t], right, score[eligible], cfg.target_precision, cfg.confidence, "pred_probs", n_drawn, unit="tag flips")
    log.info("%s", rule.summary())
    if rule.threshold is None:
        return rule, np.zeros_like(doubt)
    return rule, candidate & ~reviewed[:, None] & (score >= rule.threshold)


def verified_corrections(
    cfg: RelabelConfig,
    parent: Version,
    rows: pa.Table,
    evidence: np.ndarray,
    labels: np.ndarray,
    flagged: np.ndarray,
    reviewed: np.ndarray,
    reviewed_labels: list,
) -> tuple[FixRule, np.ndarray]:
    """The correction rule that the calibration reviews support at ``cfg.target_precision`` and the
    corrections it makes (-1 where none): unreviewed flagged rows whose candidate reaches its threshold."""
    from .samples import calibration_reviews

    sample, n_drawn = calibration_reviews(cfg.open_store(), rows, parent.name)
    if len(sample) == 0:
        raise InputError(
            f"{parent.name} {parent.tag} has no reviewed calibration sample: --target-precision needs people's answers on a random sample of the flagged rows",
            f"run `labelq review export {parent.name} --sample 100 -o sample.json`, review it, `labelq review import {parent.name} FILE`, then relabel again",
        )
    cand, score = candidates(evidence, labels)
    right = np.array([reviewed_labels[i] == [int(cand[i])] for i in sample])
    eligible = flagged & (~reviewed | np.isin(np.arange(len(labels)), sample))  # the rows the sample was drawn from
    kind = "noise_aware" if cfg.noise_aware else "pred_probs"
    rule = choose_rule(score[sample], right, score[eligible], cfg.target_precision, cfg.confidence, kind, n_drawn)
    fix = flagged & ~reviewed & (score >= rule.threshold) if rule.threshold is not None else np.zeros(len(labels), bool)
    log.info("%s", rule.summary())
    return rule, np.where(fix, cand, -1)


def _calibration_rows(
    cfg: RelabelConfig, flagged: np.ndarray, reviewed: np.ndarray, labels: np.ndarray, old_labels: list, old_corrected: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(calibration rows, coverage-check rows), both seeded random halves of the eligible rows."""
    if cfg.calibration == "reviewed":
        single = np.array([lab is None or len(lab) == 1 for lab in old_labels])
        eligible = np.flatnonzero(reviewed & single)
        if len(eligible) == 0:
            raise InputError(
                "calibration='reviewed' but no row has a single reviewed label", "import reviews first (labelq review import), or use calibration 'unflagged'"
            )
    elif cfg.calibration == "unflagged":
        eligible = np.flatnonzero(~flagged)
    else:
        eligible = np.arange(len(labels))
    perm = np.random.default_rng(cfg.seed).permutation(eligible)
    half = (len(perm) + 1) // 2
    return np.sort(perm[:half]), np.sort(perm[half:])


@step("publish")
def publish_step(cfg: RelabelConfig, parent: Version, table: pa.Table, changes: dict, run: dict | None = None) -> Version:
    return publish(cfg.open_store(), parent, table, changes, run)


def publish(store: Store, parent: Version, table: pa.Table | None, changes: dict, run: dict | None, **options) -> Version:
    """Publish a version derived from ``parent`` with the job's manifest ``changes`` (``Store.derive``), and update the catalog."""
    from ..sql import catalog_hook

    version = store.derive(parent, table, run=RunSection.from_json(run or {}), hooks=(catalog_hook,), **changes, **options)
    log.info("published %s %s (from %s): %d corrected", parent.name, version.tag, parent.tag, version.manifest().n_corrected or 0)
    return version


def relabel_job(cfg: RelabelConfig, runner: Runner) -> RelabelResult:
    """Re-labeling, described once: ``runner`` decides where each step runs."""
    parent = runner.run(load_step, cfg)
    table, changes = runner.run(relabel_step, cfg, parent)
    version = runner.run(publish_step, cfg, parent, table, changes, runner.run_info())
    runner.run(report_step, version)
    r: RelabelSection = changes["relabel"]
    return RelabelResult(version, parent, r.kinds, changes["n_corrected"], r.coverage_measured, r.mean_set_size)


def relabel(config: RelabelConfig | None = None, **kwargs) -> RelabelResult:
    """Re-label in this process (no Prefect): ``relabel(name="digits")``."""
    return relabel_job(config or RelabelConfig(**kwargs), InProcess())


@step("report")
def report_step(version: Version):
    from ..report import write_audit_report

    return write_audit_report(version)
