"""The audit as a Prefect flow: ingest -> folds (parallel tasks, cached on disk) -> detect -> publish -> report.

Tasks wrap the plain steps of ``labelq.pipeline``; the flow only orders them. Large values (tables,
arrays) pass between tasks in memory, so Prefect's own result cache is off (``NO_CACHE``): finished
folds are cached by labelq's fold cache, keyed by (data hash, model config, fold, folds, seed), which
works the same with or without Prefect and lets an interrupted run resume.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from labelq import pipeline
from labelq.history import raise_alerts
from labelq.pipeline import AuditConfig, AuditResult

ingest = task(pipeline.ingest_step, name="ingest", cache_policy=NO_CACHE)
plan = task(pipeline.plan_step, name="plan-folds", cache_policy=NO_CACHE)
fold = task(pipeline.fold_step, name="fold", cache_policy=NO_CACHE, task_run_name="fold-{fold}")
assemble = task(pipeline.assemble_step, name="assemble", cache_policy=NO_CACHE)
user_pred_probs = task(pipeline.user_pred_probs_step, name="load-pred-probs", cache_policy=NO_CACHE)
detect = task(pipeline.detect_step, name="confident-learning", cache_policy=NO_CACHE)
judge = task(pipeline.judge_step, name="llm-judges", cache_policy=NO_CACHE)
decide = task(pipeline.decide_step, name="decide", cache_policy=NO_CACHE)
publish = task(pipeline.publish_step, name="publish", cache_policy=NO_CACHE)
report = task(pipeline.report_step, name="report", cache_policy=NO_CACHE)
cached_folds = task(pipeline.cached_folds_step, name="cached-folds", cache_policy=NO_CACHE)
history = task(pipeline.history_step, name="history", cache_policy=NO_CACHE)


@flow(name="labelq-audit", task_runner=ThreadPoolTaskRunner(max_workers=1), validate_parameters=False)
def audit_flow(source: str = "digits", name: str | None = None, store: str | None = None, **options: Any) -> AuditResult:
    """Audit ``source`` and publish a new version of ``name`` in ``store``; ``options`` are ``AuditConfig`` fields."""
    import time

    t0 = time.perf_counter()
    cfg = AuditConfig(source=source, name=name, store=store, **options)
    examples = ingest(cfg)
    n_cached = n_total = None
    if cfg.pred_probs:
        pred_probs = user_pred_probs(cfg, examples)
    else:
        p = plan(cfg, examples)
        n_cached, n_total = cached_folds(cfg, p), p.n_folds
        futures = [fold.submit(cfg, p, f) for f in range(p.n_folds)]
        pred_probs = assemble(examples, p, [f.result() for f in futures])
    detection = detect(cfg, examples, pred_probs)
    votes, stats = judge(cfg, examples, detection) if cfg.judge_configs else (None, None)
    decision, detections, info = decide(cfg, pred_probs, detection, votes)
    run = {"flow_run_id": str(flow_run.get_id()), "flow_run_name": flow_run.get_name()}
    version = publish(cfg, examples, pred_probs, detections, decision, votes, stats, info, run)
    html_path, json_path = report(version)
    record = history(cfg, version, examples, pred_probs, decision, t0, n_cached, n_total, run)
    raise_alerts(record, cfg.name)  # the flow run ends Failed with the reasons; Prefect automations can act on it
    return AuditResult(version, html_path, json_path, int(decision.is_label_issue.sum()), time.perf_counter() - t0, record)


def task_runner(jobs: int = 1, cluster: str | None = None):
    """Threads in this process (default), or a Dask cluster through prefect-dask.

    ``cluster``: ``"local"`` starts a local cluster of ``jobs`` worker processes (one thread each, and
    one torch/BLAS thread per worker so they do not fight over the cores); anything else is the address
    of a running Dask scheduler (``tcp://host:8786``). Workers write finished folds to the store's cache,
    so on a remote cluster the store must be a path every worker and this process share.
    """
    if cluster is None:
        return ThreadPoolTaskRunner(max_workers=jobs)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:
        from labelq.errors import MissingDependencyError

        raise MissingDependencyError("running on a Dask cluster needs prefect-dask", 'pip install "labelq[cluster]"') from exc
    if cluster == "local":
        threads = {v: "1" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
        return DaskTaskRunner(cluster_kwargs={"n_workers": max(1, jobs), "threads_per_worker": 1, "processes": True,
                                              "dashboard_address": None, "env": threads})
    return DaskTaskRunner(address=cluster)


def run_audit_flow(cfg: AuditConfig, jobs: int = 1, cluster: str | None = None) -> AuditResult:
    """Run ``audit_flow`` for ``cfg`` with ``jobs`` folds at a time, in threads or on a Dask ``cluster``."""
    from dataclasses import asdict

    params = {k: v for k, v in asdict(cfg).items()}
    return audit_flow.with_options(task_runner=task_runner(jobs, cluster))(**params)
