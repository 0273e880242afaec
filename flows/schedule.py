"""Scheduled audits: Prefect deployments of the audit flow, run by a worker of a process work pool.

``schedule_audit(cfg, cron="0 3 * * *")`` registers the deployment ``labelq-audit/<name>`` on the
Prefect server that ``PREFECT_API_URL`` names, with the audit's parameters (source, store and every
option that differs from its default) and the schedule. The deployment's entrypoint is the module
path ``labelq.flows.audit.audit_flow``, so any worker of the ``labelq`` work pool (type ``process``)
on a machine where labelq is installed can run it; each run records a row in the store's history.

    prefect server start --background
    prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api
    labelq schedule fashion fashion-mnist --cron "0 3 * * *"
    prefect worker start --pool labelq
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from labelq.errors import InputError, SchedulerError
from labelq.offline import RUN_ENV
from labelq.pipeline import AuditConfig

FLOW_NAME = "labelq-audit"
POOL = "labelq"
TAG = "labelq"


def api_url() -> str:
    """The Prefect server's API URL; scheduling needs a server that outlives this command."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise SchedulerError(
            "no Prefect server is configured: a schedule lives on a server, and a worker runs it",
            "start one (prefect server start --background) and point at it: prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api "
            "(or set PREFECT_API_URL to your team's server)",
        )
    return url


def _client():
    from prefect.client.orchestration import get_client

    api_url()
    return get_client(sync_client=True)


def _check_schedule(cron: str | None, interval: float | None, timezone: str | None) -> None:
    if (cron is None) == (interval is None):
        raise InputError("give exactly one of --cron and --interval", 'e.g. --cron "0 3 * * *" (every day at 03:00) or --interval 3600 (seconds)')
    if interval is not None and interval <= 0:
        raise InputError(f"--interval must be a positive number of seconds, got {interval}")
    if cron is not None:
        from prefect.client.schemas.schedules import CronSchedule

        try:
            CronSchedule(cron=cron, timezone=timezone)
        except ValueError as exc:
            raise InputError(
                f"not a valid cron schedule: {cron!r} ({exc.errors()[0]['msg'] if hasattr(exc, 'errors') else exc})",
                'five fields: minute hour day-of-month month day-of-week, e.g. "0 3 * * *"',
            ) from None


def _absolute(cfg: AuditConfig) -> AuditConfig:
    """Paths the worker can open from any directory: the store, a source path, a judges file, pred_probs."""
    from labelq.store import Store

    options = cfg.options()
    for key in ("judges", "pred_probs"):
        if options.get(key):
            options[key] = str(Path(options[key]).resolve())
    source = str(Path(cfg.source).resolve()) if Path(cfg.source).exists() else cfg.source
    return AuditConfig.from_options(source, cfg.name, str(Store(cfg.store).root.resolve()), **options)


def ensure_pool(client, pool: str) -> None:
    """Create the process work pool ``pool`` if the server does not have it."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    try:
        client.read_work_pool(pool)
    except ObjectNotFound:
        try:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process", description="labelq scheduled audits"))
        except ObjectAlreadyExists:
            pass


def check_audit(cfg: AuditConfig, load_data: bool = True) -> None:
    """Fail now rather than at 3 a.m.: the model and its parameters, and (``load_data``) that the source
    loads with these options and can be split into folds."""
    from labelq import pipeline
    from labelq.predict.models import resolve_model

    if not load_data:
        if cfg.predict.model not in ("auto", None):
            for modality in ("image", "text", "tabular"):
                try:
                    resolve_model(cfg.predict.model, modality, cfg.predict.model_params)
                    return
                except InputError as exc:
                    if "unknown model" in exc.problem or "has no parameters" in exc.problem:
                        raise
        return
    examples = pipeline.ingest_step(cfg)
    if not cfg.predict.pred_probs:
        pipeline.plan_step(cfg, examples)


def schedule_audit(
    cfg: AuditConfig,
    cron: str | None = None,
    interval: float | None = None,
    timezone: str | None = None,
    pool: str = POOL,
    paused: bool = False,
    check_data: bool = True,
    jobs: int = 1,
    cluster: str | None = None,
) -> dict:
    """Register (or replace) the deployment ``labelq-audit/<cfg.name>``; returns its ``list_schedules`` row.

    Everything is checked first (the schedule, the audit options and, with ``check_data``, the source);
    a bad value raises ``InputError`` and registers nothing. ``jobs``/``cluster``: each run trains its
    folds and asks its judges on that task runner (``cluster="local"``: a local Dask cluster of
    ``jobs`` processes started by the run; or a Dask scheduler's address).
    """
    _check_schedule(cron, interval, timezone)
    if jobs < 1:
        raise InputError(f"--jobs must be >= 1, got {jobs}")
    from .audit import audit_flow, dask_task_runner_class, flow_parameters

    if cluster is not None:
        dask_task_runner_class()  # a missing prefect-dask fails now, not at the first scheduled run
    api_url()
    check_audit(cfg, check_data)
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule
    from prefect.deployments.runner import EntrypointType

    cfg = _absolute(cfg)
    params = {**flow_parameters(cfg), **({"jobs": jobs} if jobs != 1 else {}), **({"cluster": cluster} if cluster else {})}
    schedule = CronSchedule(cron=cron, timezone=timezone) if cron else IntervalSchedule(interval=dt.timedelta(seconds=float(interval)), timezone=timezone)
    with _client() as client:
        ensure_pool(client, pool)
    deployment = audit_flow.to_deployment(
        name=cfg.name,
        schedule=schedule,
        parameters=params,
        paused=paused,
        tags=[TAG],
        work_pool_name=pool,
        description=f"labelq audit of {cfg.source} into {params['store']}",
        entrypoint_type=EntrypointType.MODULE_PATH,
        job_variables={"env": RUN_ENV},
    )
    deployment.apply(work_pool_name=pool)
    return next(r for r in list_schedules() if r["name"] == cfg.name)


def _schedule_text(deployment) -> str:
    out = []
    for s in deployment.schedules:
        sch = s.schedule
        text = (
            f"cron {sch.cron!r}" if getattr(sch, "cron", None) else f"every {sch.interval.total_seconds():g}s" if getattr(sch, "interval", None) else str(sch)
        )
        out.append(text + ("" if s.active else " (paused)"))
    return "; ".join(out) or "(none)"


def list_schedules() -> list[dict]:
    """Every labelq audit deployment on the server: name, schedule, source, store, work pool, next and last run."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    rows = []
    with _client() as client:
        deployments = client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])))
        for d in sorted(deployments, key=lambda d: d.name):
            dep = DeploymentFilter(id=DeploymentFilterId(any_=[d.id]))
            upcoming = client.read_flow_runs(
                deployment_filter=dep,
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=1,
            )
            done = client.read_flow_runs(
                deployment_filter=dep,
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=[StateType.SCHEDULED]))),
                sort=FlowRunSort.START_TIME_DESC,
                limit=1,
            )
            p = d.parameters or {}
            rows.append(
                {
                    "name": d.name,
                    "schedule": _schedule_text(d),
                    "source": p.get("source"),
                    "store": p.get("store"),
                    "pool": d.work_pool_name,
                    "paused": bool(d.paused),
                    "runner": f"dask {p['cluster']} x{p.get('jobs', 1)}" if p.get("cluster") else f"threads x{p.get('jobs', 1)}",
                    "next_run": upcoming[0].expected_start_time.isoformat(timespec="seconds") if upcoming and upcoming[0].expected_start_time else None,
                    "last_run": f"{done[0].name} {done[0].state_name}" if done else None,
                    "id": str(d.id),
                }
            )
    return rows


def remove_schedule(name: str) -> None:
    """Delete the deployment ``labelq-audit/<name>`` (its past runs and the store's history stay)."""
    from prefect.exceptions import ObjectNotFound

    with _client() as client:
        try:
            d = client.read_deployment_by_name(f"{FLOW_NAME}/{name}")
        except ObjectNotFound:
            known = [r["name"] for r in list_schedules()]
            raise InputError(f"no scheduled audit named {name!r}", f"scheduled audits: {', '.join(known) or '(none)'}; see labelq schedule --list") from None
        client.delete_deployment(d.id)
