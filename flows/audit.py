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
from prefect.task_runners import ThreadPoolTaskRunner

from labelq import pipeline
from labelq.flows.tasks import PrefectRunner
from labelq.pipeline import AuditConfig, AuditResult


@flow(name="labelq-audit", task_runner=ThreadPoolTaskRunner(max_workers=1), validate_parameters=False)
def audit_flow(
    source: str = "digits", name: str | None = None, store: str | None = None, options: dict[str, Any] | None = None, jobs: int = 1, cluster: str | None = None
) -> AuditResult:
    """Audit ``source`` and publish a new version of ``name`` in ``store``; ``options`` holds the other options (``AuditConfig.from_options``).

    The parameters are plain JSON values, so a deployment (``labelq schedule``) stores them as they are.
    ``jobs``/``cluster`` (for deployments; ``run_audit_flow`` sets the task runner itself): a task
    runner is fixed when a flow starts, so this run starts the audit as a subflow on that runner.
    """

    if jobs != 1 or cluster is not None:
        cfg = AuditConfig.from_options(source, name, store, **(options or {}))
        return audit_flow.with_options(task_runner=task_runner(jobs, cluster, cfg.predict.fold_threads))(source, name, store, options)
    if logging.getLogger("labelq").level == logging.NOTSET:
        logging.getLogger("labelq").setLevel(logging.INFO)  # progress lines (folds, epochs) in the run's logs
    return pipeline.audit_job(AuditConfig.from_options(source, name, store, **(options or {})), PrefectRunner())


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
    return audit_flow.with_options(task_runner=task_runner(jobs, cluster, cfg.predict.fold_threads))(**flow_parameters(cfg))


def flow_parameters(cfg: AuditConfig) -> dict[str, Any]:
    """``audit_flow``'s parameters for ``cfg``: source, name, store, and the options that differ from their defaults."""
    return {"source": cfg.source, "name": cfg.name, "store": cfg.store, "options": cfg.options()}
