"""The audit as a Prefect flow: ingest -> folds (parallel tasks, cached on disk) -> detect -> publish -> report.

Tasks wrap the plain steps of ``labelq.pipeline``; the flow only orders them. Large values (tables,
arrays) pass between tasks in memory, so Prefect's own result cache is off (``NO_CACHE``): finished
folds are cached by labelq's fold cache, keyed by (data hash, model config, fold, folds, seed, threads, code versions), which
works the same with or without Prefect and lets an interrupted run resume.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from labelq import pipeline
from labelq.flows.tasks import step_task
from labelq.history import raise_alerts
from labelq.judges.runner import ask_batch
from labelq.pipeline import AuditConfig, AuditResult

ingest = step_task(pipeline.ingest_step, "ingest")
plan = step_task(pipeline.plan_step, "plan-folds")
fold = step_task(pipeline.fold_step, "fold", task_run_name="fold-{fold}")
assemble = step_task(pipeline.assemble_step, "assemble")
user_pred_probs = step_task(pipeline.user_pred_probs_step, "load-pred-probs")
detect = step_task(pipeline.detect_step, "confident-learning")
judge_batch = step_task(ask_batch, "judge-batch", task_run_name="judge-{judge.name}")
decide = step_task(pipeline.decide_step, "decide")
publish = step_task(pipeline.publish_step, "publish")
report = step_task(pipeline.report_step, "report")
cached_folds = step_task(pipeline.cached_folds_step, "cached-folds")


@flow(name="labelq-audit", task_runner=ThreadPoolTaskRunner(max_workers=1), validate_parameters=False)
def audit_flow(
    source: str = "digits", name: str | None = None, store: str | None = None, options: dict[str, Any] | None = None, jobs: int = 1, cluster: str | None = None
) -> AuditResult:
    """Audit ``source`` and publish a new version of ``name`` in ``store``; ``options`` holds other ``AuditConfig`` fields.

    The parameters are plain JSON values, so a deployment (``labelq schedule``) stores them as they are.
    ``jobs``/``cluster`` (for deployments; ``run_audit_flow`` sets the task runner itself): a task
    runner is fixed when a flow starts, so this run starts the audit as a subflow on that runner.
    """
    import time

    if jobs != 1 or cluster is not None:
        cfg = AuditConfig(source=source, name=name, store=store, **(options or {}))
        return audit_flow.with_options(task_runner=task_runner(jobs, cluster, cfg.fold_threads))(source, name, store, options)
    t0 = time.perf_counter()
    if logging.getLogger("labelq").level == logging.NOTSET:
        logging.getLogger("labelq").setLevel(logging.INFO)  # progress lines (folds, epochs) in the run's logs
    cfg = AuditConfig(source=source, name=name, store=store, **(options or {}))
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
    # Judge batches are tasks on the flow's task runner (threads, or Dask workers); the vote cache stays
    # in this process, its only writer.
    votes, stats = pipeline.judge_step(cfg, examples, detection, submit=judge_batch.submit) if cfg.judge_configs else (None, None)
    decision, detections, info = decide(cfg, pred_probs, detection, votes)
    run = {"flow_run_id": str(flow_run.get_id()), "flow_run_name": flow_run.get_name()}
    version, record = publish(cfg, examples, pred_probs, detections, decision, votes, stats, info, run, t0, n_cached, n_total)  # with its history record
    html_path, json_path = report(version)
    raise_alerts(record, cfg.name)  # the flow run ends Failed with the reasons; Prefect automations can act on it
    return AuditResult(version, html_path, json_path, int(decision.is_label_issue.sum()), time.perf_counter() - t0, record)


def task_runner(jobs: int = 1, cluster: str | None = None, fold_threads: int | None = None):
    """Threads in this process (default), or a Dask cluster through prefect-dask.

    ``cluster``: ``"local"`` starts a local cluster of ``jobs`` worker processes (one task at a time
    each, with ``fold_threads`` torch/BLAS threads, by default the cores divided among the workers so
    they do not fight over them); anything else is the address
    of a running Dask scheduler (``tcp://host:8786``). Workers write finished folds to the store's cache,
    so on a remote cluster the store must be a path every worker and this process share.
    """
    if cluster is None:
        return ThreadPoolTaskRunner(max_workers=jobs)
    DaskTaskRunner = dask_task_runner_class()
    if cluster == "local":
        import os

        import dask

        n = fold_threads or max(1, (os.cpu_count() or 1) // max(1, jobs))
        # Set before the worker processes start (the nanny's pre-spawn environment; malloc reads it at
        # start-up). Dask's default MALLOC_TRIM_THRESHOLD_ turns off glibc's adaptive mmap threshold,
        # so every large torch buffer is mmapped afresh and training runs about 2x slower; a fixed
        # 32 MiB mmap threshold restores the speed of a plain process.
        dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in worker_environ(n).items()})
        return DaskTaskRunner(cluster_kwargs={"n_workers": max(1, jobs), "threads_per_worker": 1, "processes": True, "dashboard_address": None})
    return DaskTaskRunner(address=cluster)


def dask_task_runner_class():
    """prefect-dask's ``DaskTaskRunner``, or a clear error naming the extra to install."""
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:
        from labelq.errors import MissingDependencyError

        raise MissingDependencyError("running on a Dask cluster needs prefect-dask", 'pip install "labelq[cluster]"') from exc
    return DaskTaskRunner


def worker_environ(threads: int) -> dict[str, str]:
    """Environment for Dask worker processes that train models: ``threads`` compute threads, fast malloc."""
    return {**{v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}, "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20)}


def run_audit_flow(cfg: AuditConfig, jobs: int = 1, cluster: str | None = None) -> AuditResult:
    """Run ``audit_flow`` for ``cfg`` with ``jobs`` folds at a time, in threads or on a Dask ``cluster``."""
    return audit_flow.with_options(task_runner=task_runner(jobs, cluster, cfg.fold_threads))(**flow_parameters(cfg))


def flow_parameters(cfg: AuditConfig) -> dict[str, Any]:
    """``audit_flow``'s parameters for ``cfg``: source, name, store, and the fields that differ from their defaults."""
    from dataclasses import fields

    options = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in ("source", "name", "store") and getattr(cfg, f.name) != _default(f)}
    return {"source": cfg.source, "name": cfg.name, "store": cfg.store, "options": options}


def _default(f) -> Any:
    from dataclasses import MISSING

    return f.default_factory() if f.default_factory is not MISSING else f.default
