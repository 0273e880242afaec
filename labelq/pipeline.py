"""The audit as a sequence of steps over plain values, used by ``labelq.audit`` and by the Prefect flow.

``audit(AuditConfig(...))`` runs every step in this process; ``flows/audit.py`` wraps the same steps
as Prefect tasks (folds in parallel). Steps: ingest -> predict (plan, folds, assemble, or load the
user's pred_probs) -> detect + decide -> publish -> report.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from . import schema as S
from .crowd import crowd_audit
from .decide import AutoFix, Decision, audited_table, issues_table
from .detect import DetectContext, Detection, DetectOptions, noise_table, run_detector
from .detect.context import FIX, JudgeVerdicts
from .detect.neighbors import NeighborChecks, NeighborOptions, check_neighbors, embed, has_inputs
from .detector_samples import reviewed_sample
from .errors import InputError
from .history import RECORD, AlertRules, RunRecord, prepare_record, raise_alerts
from .ingest import IngestOptions, load_examples
from .ingest.annotations import annotations_of
from .io import release_freed_memory
from .judges.config import JudgeOptions
from .labelkind import LabelKind, kind_named, kind_of
from .manifest import AuditSection, JudgesSection, Manifest, RunSection
from .options import changed, dest, option_fields, take
from .predict import (
    FoldCache,
    FoldPlan,
    GivenProbs,
    PredictOptions,
    assemble,
    load_pred_probs,
    plan_folds,
    pred_probs_table,
    pred_probs_view,
    predict_fold,
    training_margins,
)
from .predict.embeddings import embed_inputs, encoder_for
from .predict.models import EMBEDDING_MODELS, read_inputs, resolve_model
from .reliability import with_warning
from .report import write_audit_report
from .runner import InProcess, Runner, step
from .sql import catalog_hook
from .store import Store, Version, check_name

log = logging.getLogger(__name__)


def derive_name(source: str, split: str | None = None) -> str:
    """A valid dataset name from a source: ``data/My Reviews.csv`` -> ``My-Reviews``; the split is appended."""
    path = Path(str(source))
    stem = path.stem if path.suffix else path.name
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")[:100] or "dataset"
    return f"{name}-{split}" if split else name


@dataclass
class AuditConfig:
    """Everything an audit needs, one section per concern. ``source`` is a built-in name or a path; ``name``
    defaults to the source's name. ``AuditConfig.from_options(model="logreg", n_folds=3)`` builds one from
    flat option names (those of ``labelq audit``'s options, declared once on the sections' fields)."""

    source: str = "digits"
    name: str | None = None
    store: str | None = None
    ingest: IngestOptions = field(default_factory=IngestOptions)
    predict: PredictOptions = field(default_factory=PredictOptions)
    detect: DetectOptions = field(default_factory=DetectOptions)
    checks: NeighborOptions = field(default_factory=NeighborOptions)
    judging: JudgeOptions = field(default_factory=JudgeOptions)
    auto_fix: AutoFix | None = None
    alerts: AlertRules = field(default_factory=AlertRules)

    SECTIONS: ClassVar[dict[str, type]] = {
        "ingest": IngestOptions,
        "predict": PredictOptions,
        "detect": DetectOptions,
        "checks": NeighborOptions,
        "judging": JudgeOptions,
        "alerts": AlertRules,
    }

    def __post_init__(self) -> None:
        if self.name is None:
            self.name = derive_name(self.source, self.ingest.split)
        check_name(self.name)
        if reads_judges(self):
            if not self.judging.configs:
                raise InputError(f"detector {self.detect.detector!r} flags by the LLM judges' votes, and no judges are given", FIX["judges"])
            if not self.judging.judge_all:
                log.info("detector %r: the judges see every row (--judge-all)", self.detect.detector)
                self.judging = replace(self.judging, judge_all=True)
        # no model reads given pred_probs' inputs (a Parquet source's stay on disk until publish), but judges read the text
        self.ingest = replace(self.ingest, inputs_required=self.predict.pred_probs is None or bool(self.judging.configs))
        self.open_store().check_folders(self.name)  # writes nothing; the ingest step probes that the store takes writes

    @classmethod
    def from_options(cls, source: str = "digits", name: str | None = None, store: str | None = None, **options: Any) -> AuditConfig:
        """A config from flat option names: ``from_options("digits", model="logreg", n_folds=3, alert_max_rate=0.1)``."""
        rest = dict(options)
        sections = {key: kind(**take(kind, rest)) for key, kind in cls.SECTIONS.items()}
        fix = take(AutoFix, rest)
        if rest:
            known = sorted(dest(f) for kind in (*cls.SECTIONS.values(), AutoFix) for f in option_fields(kind))
            raise InputError(f"unknown audit option(s) {sorted(rest)}", f"use {known}")
        auto_fix = AutoFix(**fix) if fix.get("min_confidence") is not None else None
        return cls(source, name, store, auto_fix=auto_fix, **sections)

    def options(self) -> dict[str, Any]:
        """The options that differ from their defaults, by flat name (``from_options`` takes them back)."""
        out: dict[str, Any] = {}
        for key in self.SECTIONS:
            out.update(changed(getattr(self, key)))
        return {**out, **(changed(self.auto_fix) if self.auto_fix else {})}

    def open_store(self) -> Store:
        return Store(self.store)


@dataclass
class AuditResult:
    version: Version
    report_html: Path
    report_json: Path
    n_label_issues: int
    seconds: float
    history: RunRecord | None = None


@step("ingest")
def ingest_step(cfg: AuditConfig) -> pa.Table:
    cfg.open_store().check_writable(cfg.name)  # a store that cannot take the version: refuse before any work
    cfg.open_store().check_dataset(cfg.name)  # a damaged earlier version: refuse now, before reading or training
    examples = load_examples(cfg.source, cfg.ingest)
    cfg.open_store().check_label_kind(cfg.name, kind_of(examples))  # fail now, not after training
    kind_of(examples).check_audit(detect_options(cfg, examples).detector, bool(cfg.judging.configs))
    if cfg.judging.configs and S.info_of(examples).modality != "text":  # fail now, not after training
        raise InputError(
            f"LLM judges read text, but {cfg.source!r} has {S.info_of(examples).modality} inputs",
            "leave --judges out, or name a text column with --text-column",
        )
    if cfg.checks.data_checks and kind_of(examples).data_checks and cfg.checks.neighbor_space == "embeddings" and has_inputs(examples):
        encoder_for(S.info_of(examples).modality)  # fail now, not after training: no encoder for the modality, or its packages missing
    release_freed_memory()  # what reading the source freed (Fashion-MNIST: 46 MB)
    return examples


@step("near-duplicates")
def duplicates_step(cfg: AuditConfig, examples: pa.Table) -> NeighborChecks | None:
    """Exact and near duplicates (``labelq.detect.neighbors``); None when not asked for or the inputs were not read."""
    if not cfg.checks.data_checks:
        return None
    if not kind_of(examples).data_checks:
        log.info("no near-duplicate or outlier check: the rows are %s", kind_of(examples).what)
        return None
    if not has_inputs(examples):
        log.info("no near-duplicate check: the inputs were not read (given pred_probs and inputs left in their Parquet source)")
        return None
    checks = check_neighbors(examples, cfg.checks, cfg.predict.seed, neighbor_embedder(cfg, examples))
    release_freed_memory()  # the decoded images and vectors go before a model claims memory
    return checks


def neighbor_embedder(cfg: AuditConfig, examples: pa.Table) -> Callable[[np.ndarray], np.ndarray] | None:
    """What turns the rows' inputs into the pretrained embeddings the checks run in (``--neighbor-space``),
    or None for the inputs' own space. ``auto`` takes the embeddings when the audit's model computes them
    (then they are read back from the cache)."""
    space = cfg.checks.neighbor_space
    modality = S.info_of(examples).modality
    if space == "auto":
        spec = resolve_model(cfg.predict.model, modality, cfg.predict.model_params, kind_of(examples))
        uses_embeddings = not cfg.predict.pred_probs and spec.name in EMBEDDING_MODELS
        space = "embeddings" if uses_embeddings else "inputs"
    if space == "inputs":
        return None
    encoder = encoder_for(modality)  # fails now when the encoder's packages are missing
    cache_dir = cfg.open_store().cache_dir
    return lambda inputs: embed_inputs(inputs, encoder, cache_dir)


@step("plan-folds")
def plan_step(cfg: AuditConfig, examples: pa.Table) -> FoldPlan:
    return plan_folds(
        examples, cfg.predict.model, cfg.predict.n_folds, cfg.predict.seed, cfg.predict.model_params, cfg.predict.fold_threads, cfg.open_store().cache_dir
    )


@step("cached-folds")
def cached_folds_step(cfg: AuditConfig, plan: FoldPlan) -> int:
    """How many of the plan's folds are already in the fold cache (an unchanged source: all of them)."""
    cache = FoldCache(cfg.open_store().fold_cache)
    n = sum(cache.has(plan.key(f), plan.fold_shape(f), plan.kind) for f in range(plan.n_folds))
    log.info("%d of %d folds are in the cache%s", n, plan.n_folds, " (unchanged data and settings: no model is trained)" if n == plan.n_folds else "")
    return n


@step("fold", run_name="fold-{fold}")
def fold_step(cfg: AuditConfig, plan: FoldPlan, fold: int) -> np.ndarray:
    """One fold, with ``cfg.predict.fold_threads`` compute threads when set.

    The thread count is part of what makes a fold reproducible: torch and OpenMP split sums across
    threads, so the same seed on 1 and on 2 threads gives slightly different weights. Runs with the
    same ``fold_threads`` (in this process or on any Dask worker) give bit-identical predictions.
    """
    with limited_threads(cfg.predict.fold_threads):
        return predict_fold(plan, fold, FoldCache(cfg.open_store().fold_cache))


@contextmanager
def limited_threads(n: int | None):
    """Run the block with ``n`` torch intra-op threads and ``n`` BLAS/OpenMP threads; ``None`` changes nothing."""
    if n is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before)


@step("assemble")
def assemble_step(examples: pa.Table, plan: FoldPlan, fold_probs: list[np.ndarray]) -> pa.Table:
    return pred_probs_table(examples[S.ID], assemble(plan, fold_probs), plan.folds, plan.spec.name)


@step("training-margins")
def margins_step(cfg: AuditConfig, plan: FoldPlan) -> np.ndarray | None:
    """The rows' area under the margin over the folds' training epochs, from the fold cache (None: the model trains in neither epochs nor iterations)."""
    return training_margins(plan, FoldCache(cfg.open_store().fold_cache))


@step("load-pred-probs")
def user_pred_probs_step(cfg: AuditConfig, examples: pa.Table) -> GivenProbs:
    return load_pred_probs(cfg.predict.pred_probs, examples, cfg.open_store().cache_dir)


PredProbs = pa.Table | GivenProbs  # the contract's table, or the user's .npy read by chunks


def probs_of(pred_probs: PredProbs) -> np.ndarray | GivenProbs:
    """What the steps compute on: a float32 view of the table, or the ``.npy`` file read by chunks."""
    return pred_probs if isinstance(pred_probs, GivenProbs) else pred_probs_view(pred_probs)


def given_labels(examples: pa.Table) -> np.ndarray:
    """The rows' labels as the detectors take them (``(N,)`` class indices, ``(N, K)`` tags: the kind's ``labels``)."""
    return kind_of(examples).labels(examples)


def out_of_sample_accuracy(examples: pa.Table, probs: np.ndarray | GivenProbs) -> float | None:
    """Accuracy against the given labels, as the kind of label measures it (tags: over rows x tags)."""
    return kind_of(examples).accuracy(given_labels(examples), probs) if examples.num_rows else None


@step("confident-learning")
def detect_step(cfg: AuditConfig, examples: pa.Table, pred_probs: PredProbs, client: Any = None, margins: np.ndarray | None = None) -> Detection:
    """The kind of label's detection (``LabelKind.detect``): for one class a row the registered detector, for tags
    cleanlab's multi-label filter. ``client``: a Dask client (the runner's, ``labelq audit --cluster``) whose workers
    run confident learning's passes; ``margins``: the rows' area under the margin from the folds' training
    (``margins_step``), for ``--detector margin``; ``--detector ensemble`` also reads the rows people reviewed in
    the dataset's detector samples (``labelq.detector_samples``)."""
    info = S.info_of(examples)
    features = (lambda: feature_space(cfg, examples)) if has_inputs(examples) else None
    labels = given_labels(examples)
    options = detect_options(cfg, examples)
    reviewed = reviewed_sample(cfg.open_store(), cfg.name, examples[S.ID], labels) if options.detector == "ensemble" else None
    ctx = DetectContext(labels, len(info.class_names), probs_of(pred_probs), features, training_margins=margins, reviewed=reviewed)
    if reads_judges(cfg):  # judged after: ``judges_detect_step``
        options = replace(options, detector="confident_learning")
    elif options.detector != cfg.detect.detector:
        log.info("--detector auto: %s (ensemble for images with one class a row and labelq's model, confident_learning otherwise)", options.detector)
    return kind_of(examples).detect(options, ctx, client)


def detect_options(cfg: AuditConfig, examples: pa.Table) -> DetectOptions:
    """The audit's detector options with ``--detector auto`` made a detector for these rows (``DetectOptions.resolve``)."""
    return cfg.detect.resolve(kind_of(examples).name, S.info_of(examples).modality, has_inputs(examples), cfg.predict.pred_probs is None)


def reads_judges(cfg: AuditConfig) -> bool:
    """Whether the audit's detector flags by the judges' votes (``needs`` them): it runs after the judges, on
    confident learning's detection, which picks the judges' calibration rows and estimates the share of wrong labels."""
    return "judges" in getattr(cfg.detect.impl, "needs", ())


@step("detect-by-judges")
def judges_detect_step(cfg: AuditConfig, examples: pa.Table, pred_probs: PredProbs, base: Detection, votes: pa.Table, planted: pa.Table | None) -> Detection:
    """The registered detector that reads the judges (``labelq.detect.judges``), on their combined verdicts: their
    ``--judge-aggregation`` with a prior of ``base``'s (confident learning's) estimated share of wrong labels."""
    from .judges.ensemble import judge_evidence, judges_alone

    labels = given_labels(examples)
    n_classes = len(S.info_of(examples).class_names)
    ev = judge_evidence(votes, examples[S.ID].to_pylist(), n_classes)
    estimate = base.extra.get("num_label_issues_estimate", int(base.is_issue.sum()))
    weights = {j.name: j.weight for j in cfg.judging.configs or []}
    p_wrong, info = judges_alone(ev, planted, estimate / max(len(labels), 1), cfg.judging.judge_aggregation, weights)
    ctx = DetectContext(labels, n_classes, probs_of(pred_probs), judges=JudgeVerdicts(ev.rows, p_wrong, ev.choice, {"judged_rows": len(ev.rows), **info}))
    detection = run_detector(cfg.detect.impl, ctx)
    detection.extra.update({k: v for k, v in base.extra.items() if k != "num_label_issues_estimate"})  # confident learning's noise estimates
    return detection


def feature_space(cfg: AuditConfig, examples: pa.Table) -> np.ndarray:
    """The rows' ``(N, D)`` vectors in the near-duplicate check's feature space (``--neighbor-space``), for
    detectors that read features (``knn_vote``)."""
    embedder = neighbor_embedder(cfg, examples)
    inputs = read_inputs(examples)
    return embedder(inputs) if embedder is not None else embed(S.info_of(examples).modality, inputs, cfg.predict.seed)


def judge_rows(cfg: AuditConfig, labels: np.ndarray, detection: Detection) -> tuple[np.ndarray, np.ndarray]:
    """Which rows the judges see (positions): every row (``judge_all``), else the flagged rows plus a seeded random
    calibration sample of ``judge_sample`` other rows (the ensemble needs clean rows to learn from); and, among
    them, the rows also asked about a planted wrong label (``labelq.judges.calibration``)."""
    from .judges.calibration import PLANTED_ROWS, calibration_rows

    flagged = np.flatnonzero(detection.is_issue)
    rest = np.flatnonzero(~detection.is_issue)
    sample = np.random.default_rng(cfg.predict.seed).choice(rest, size=min(cfg.judging.judge_sample, len(rest)), replace=False)
    judged = np.arange(len(detection.is_issue)) if cfg.judging.judge_all else np.sort(np.concatenate([flagged, sample]))
    planted = min(PLANTED_ROWS, cfg.judging.judge_sample)  # --judge-sample 0: no calibration, and no extra requests
    return judged, calibration_rows(labels, sample, flagged, planted, cfg.predict.seed)


def judge_step(cfg: AuditConfig, examples: pa.Table, detection: Detection, pred_probs: PredProbs, submit=None) -> tuple[pa.Table, list[dict], pa.Table | None]:
    """The judges' votes, their stats, and their votes on planted wrong labels (None without a calibration sample);
    ``submit`` sends batches of ``cfg.judging.judge_batch_rows`` rows to a task runner (see ``run_judges``)."""
    from .judges import run_judges
    from .judges.calibration import planted_labels, planted_votes, with_planted

    labels = given_labels(examples)
    judged, calibration = judge_rows(cfg, labels, detection)
    ids = examples[S.ID].take(pa.array(judged)).to_pylist()
    common = dict(cache_path=cfg.open_store().judge_cache, seed=cfg.predict.seed, submit=submit, batch_rows=cfg.judging.judge_batch_rows)
    votes, stats = run_judges(examples, cfg.judging.configs, ids, **common)
    if not len(calibration):
        return votes, stats, None
    probs = probs_of(pred_probs)
    rows = probs.rows(calibration) if isinstance(probs, GivenProbs) else probs[calibration]
    planted = planted_labels(labels[calibration], rows, cfg.predict.seed)
    log.info("judges: %d rows asked again under a planted wrong label, to weigh what each judge knows", len(calibration))
    planted_table, planted_stats = planted_votes(examples, cfg.judging.configs, calibration, planted, **common, given_votes=votes)
    return votes, with_planted(stats, planted_stats), planted_table


@step("check-signal")
def signal_step(examples: pa.Table, pred_probs: PredProbs) -> dict:
    """Whether the model beats the class prior (``labelq.reliability``): if not, the flags mean nothing."""
    signal = kind_of(examples).check_signal(given_labels(examples), probs_of(pred_probs))
    if not signal["reliable"]:
        compared = signal.get("compared") or f"the class prior (accuracy {signal['accuracy']:.3f}, majority class {signal['majority_share']:.3f})"
        log.warning("the out-of-sample model is no better than %s", compared)
    return signal


@step("consensus")
def crowd_step(examples: pa.Table, pred_probs: PredProbs) -> tuple[dict[str, pa.Table], dict]:
    """Several annotators a row: consensus labels, annotator quality, ActiveLab scores and agreement (``labelq.crowd``)."""
    ann = annotations_of(examples, len(S.info_of(examples).class_names))
    probs = probs_of(pred_probs)
    if isinstance(probs, GivenProbs):
        probs = probs.rows(np.arange(probs.num_rows))
    tables, info = crowd_audit(ann, probs, examples[S.ID].combine_chunks())
    alpha = "n/a" if info["krippendorff_alpha"] is None else f"{info['krippendorff_alpha']:.3f}"
    log.info(
        "consensus of %d annotators on %s rows: Krippendorff's alpha %s on %s rows; CROWDLAB's consensus differs from the majority on %d rows",
        info["annotators"],
        f"{ann.n_items:,}",
        alpha,
        f"{info['alpha_rows']:,}",
        info["consensus_differs_from_majority"],
    )
    return tables, info


@step("decide")
def decide_step(
    cfg: AuditConfig,
    pred_probs: PredProbs,
    detection: Detection,
    votes: pa.Table | None = None,
    reliable: bool = True,
    kind: LabelKind | None = None,
    planted: pa.Table | None = None,
) -> tuple[Decision, list[Detection], dict]:
    """The ``kind`` of label's decision (``LabelKind.decide``; one class a row when not given): confident learning
    alone, or combined with the judges' votes on the rows they saw. No automatic correction when the model is not
    ``reliable`` (no better than the class prior). ``planted``: the judges' votes on planted wrong labels
    (``judge_step``), which the ``calibrated`` aggregation weighs the judges by."""
    ids = pred_probs.ids if isinstance(pred_probs, GivenProbs) else pred_probs[S.ID]
    kind = kind or kind_named("single")
    return kind.decide(detection, probs_of(pred_probs), cfg.auto_fix if reliable else None, votes, cfg.judging, ids, planted)


@step("publish")
def publish_step(
    cfg: AuditConfig,
    examples: pa.Table,
    pred_probs: PredProbs,
    detections: list[Detection],
    decision: Decision,
    votes: pa.Table | None = None,
    judge_stats: list[dict] | None = None,
    judge_info: dict | None = None,
    run: dict | None = None,
    started: float | None = None,
    folds_cached: int | None = None,
    folds_total: int | None = None,
    signal: dict | None = None,
    duplicates: NeighborChecks | None = None,
    planted: pa.Table | None = None,
    crowd: tuple[dict[str, pa.Table], dict] | None = None,
) -> tuple[Version, dict | None]:
    """Publish the audited rows; ``detections[0]`` is confident learning, the rest (judges, ensemble) are evidence.

    With ``started`` (the run's ``time.perf_counter()`` at its start) the version carries the run's
    history record (``run.json``), written in the same atomic step as the version. Returns the version
    and that record (None without ``started``).
    """
    detection = detections[0]
    audited = audited_table(examples, decision, duplicates)
    labels = given_labels(examples)
    probs = probs_of(pred_probs)
    if isinstance(pred_probs, GivenProbs):
        model = pred_probs.model
    else:
        model = pred_probs[S.MODEL][0].as_py() if pred_probs.num_rows else None
    manifest = Manifest(
        n_label_issues=int(decision.is_label_issue.sum()),
        n_corrected=int(decision.corrected_rows.sum()),
        corrections=S.correction_counts(audited),
        audit=AuditSection(
            seed=cfg.predict.seed,
            n_folds=None if cfg.predict.pred_probs else cfg.predict.n_folds,
            model=model,
            model_config=None if cfg.predict.pred_probs else {"name": cfg.predict.model, "params": cfg.predict.model_params},
            filter_by=cfg.detect.filter_by,
            auto_fix=cfg.auto_fix.describe() if cfg.auto_fix else None,
            num_label_issues_estimate=detection.extra.get("num_label_issues_estimate"),
            out_of_sample_accuracy=out_of_sample_accuracy(examples, probs),
            class_error_rate=detection.extra.get("class_error_rate"),
            detectors=[d.detector for d in detections],
            config={k: v for k, v in asdict(cfg).items() if k not in ("store",)},
            reliability=with_warning(signal, judge_info) if signal else None,
            near_duplicates=duplicates.info if duplicates is not None else None,
            tags_flagged={k: int(detection.extra[k].sum()) for k in ("missing", "extra")} if "missing" in detection.extra else None,
            ensemble=detection.extra.get("ensemble"),
            margin=detection.extra.get("margin"),
            crowd=crowd[1] if crowd else None,
        ),
        judges=JudgesSection.from_json({"stats": judge_stats, **(judge_info or {})}) if judge_stats is not None else None,
        run=RunSection.from_json(run or {}),
    )
    tables = {"pred_probs": pred_probs, "issues": issues_table(audited, detections, duplicates)}
    if "joint" in detection.extra:
        tables["noise"] = noise_table(detection.extra["joint"], detection.extra["noise_matrix"])
    if votes is not None:
        tables["judge_votes"] = votes
    if planted is not None:
        tables["judge_planted"] = planted
    if crowd is not None:
        tables.update(crowd[0])
    store = cfg.open_store()
    written: dict[str, dict] = {}
    records = None
    if started is not None:
        import datetime as dt

        begun = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=time.perf_counter() - started)
        estimate = detection.extra.get("num_label_issues_estimate")
        if estimate is None:  # a registered detector that estimates nothing: the kind's estimate (confident learning's count)
            estimate = kind_of(examples).estimate_issues(labels, probs)
        if estimate is None:  # nothing estimates it: the flags themselves (as the tags kind's detector counts)
            estimate = int(decision.is_label_issue.sum())
        complete = prepare_record(
            store,
            kind_of(examples).class_codes(labels),
            probs.shape[1],
            estimate,
            decision.is_label_issue,
            begun,
            folds_cached,
            folds_total,
            cfg.alerts,
            run,
            (signal or {"reliable": True})["reliable"],
            duplicates.info if duplicates is not None else None,
        )

        def records(full_manifest: Manifest) -> dict[str, dict]:
            written.update(complete(full_manifest))
            return written

    version = store.publish(cfg.name, audited, tables, manifest, records=records, hooks=(catalog_hook,), skip_unchanged=True)
    record = RunRecord.from_json(written.get(RECORD))  # as written: the store set ``published``
    if record is not None and record.published is False:
        log.info("%s %s already holds these rows and results: nothing published, the run is recorded in the history", cfg.name, version.tag)
    else:
        log.info("published %s %s: %d rows, %d label issues -> %s", cfg.name, version.tag, audited.num_rows, manifest.n_label_issues, version.path)
    return version, record


@step("report")
def report_step(version: Version) -> tuple[Path, Path]:
    return write_audit_report(version)


def audit_job(cfg: AuditConfig, runner: Runner) -> AuditResult:
    """The audit, described once: ``runner`` decides where each step runs (``InProcess`` or Prefect tasks)."""
    t0 = time.perf_counter()
    examples = runner.run(ingest_step, cfg)
    cached = total = margins = None
    if cfg.predict.pred_probs:
        pred_probs = runner.run(user_pred_probs_step, cfg, examples)
    else:
        plan = runner.run(plan_step, cfg, examples)
        cached, total = runner.run(cached_folds_step, cfg, plan), plan.n_folds
        fold_probs = runner.map(fold_step, [(cfg, plan, f) for f in range(plan.n_folds)])
        pred_probs = runner.run(assemble_step, examples, plan, fold_probs)
        margins = runner.run(margins_step, cfg, plan) if cfg.detect.detector == "margin" else None
        del plan, fold_probs  # the models' inputs (70k decoded images: 55 MB) go before detect, publish and report
    # after the folds: what the check leaves resident (imports, BLAS buffers: Fashion-MNIST ~100 MB) does not add to training's peak
    duplicates = runner.run(duplicates_step, cfg, examples)
    detection = runner.run(detect_step, cfg, examples, pred_probs, runner.dask_client(), margins)
    votes = stats = planted = None
    if cfg.judging.configs:  # judge batches go to the runner (threads or Dask workers); the vote cache stays here, its only writer
        from .judges.runner import ask_batch

        votes, stats, planted = judge_step(cfg, examples, detection, pred_probs, submit=runner.submitter(ask_batch))
    signal = runner.run(signal_step, examples, pred_probs)
    crowd = runner.run(crowd_step, examples, pred_probs) if S.ANNOTATIONS in examples.column_names else None
    if reads_judges(cfg):  # the detector is the judges: they are not combined with it a second time
        detection = runner.run(judges_detect_step, cfg, examples, pred_probs, detection, votes, planted)
        decision, detections, _ = runner.run(decide_step, cfg, pred_probs, detection, None, signal["reliable"], kind_of(examples))
        info = detection.extra["judges"]
    else:
        decision, detections, info = runner.run(decide_step, cfg, pred_probs, detection, votes, signal["reliable"], kind_of(examples), planted)
    version, record = runner.run(
        publish_step,
        cfg,
        examples,
        pred_probs,
        detections,
        decision,
        votes,
        stats,
        info,
        runner.run_info(),
        t0,
        cached,
        total,
        signal,
        duplicates,
        planted,
        crowd,
    )
    n_flagged = int(decision.is_label_issue.sum())
    # the report reads what was published: the in-memory rows and results go first (at 1M rows, ~50 MB less at the peak)
    del examples, pred_probs, detection, votes, planted, decision, detections, duplicates, crowd
    release_freed_memory()
    html_path, json_path = runner.run(report_step, version)
    raise_alerts(record, cfg.name)  # a Prefect run ends Failed with the reasons; the CLI exits 3
    return AuditResult(version, html_path, json_path, n_flagged, time.perf_counter() - t0, record)


def audit(config: AuditConfig | None = None, **kwargs: Any) -> AuditResult:
    """Run a whole audit in this process (no Prefect). ``audit(source="digits")`` or ``audit(AuditConfig(...))``."""
    return audit_job(config or AuditConfig.from_options(**kwargs), InProcess())
