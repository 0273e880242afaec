"""How labelq's steps become Prefect tasks: one place for the options every step task shares.

A step is a plain function of ``labelq``; ``step_task`` wraps it without Prefect's result cache (large
values pass in memory, and labelq keeps its own fold and vote caches) and with retries that happen
only when the error says a retry can help (``LabelqError.retryable``, e.g. another writer took the
version number first). Bad input, damaged files and bugs fail at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

RETRIES = 2
RETRY_DELAY_S = 1.0


def retry_if_retryable(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's ``retry_condition_fn``: retry when the failure is a ``LabelqError`` whose ``retryable`` is true."""
    exc = state.result(raise_on_failure=False)
    return bool(getattr(exc, "retryable", False))


def step_task(fn: Callable[..., Any], name: str, **options: Any):
    """``fn`` as a Prefect task named ``name`` (``options``: more ``prefect.task`` options, e.g. ``task_run_name``)."""
    return task(fn, name=name, cache_policy=NO_CACHE, retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S, retry_condition_fn=retry_if_retryable, **options)


class PrefectRunner:
    """``labelq.runner.Runner`` on Prefect: each step a task (named by ``labelq.runner.step``), run inside the current flow."""

    def __init__(self) -> None:
        self._tasks: dict[Callable[..., Any], Any] = {}

    def _task(self, fn: Callable[..., Any]):
        if fn not in self._tasks:
            run_name = getattr(fn, "step_run_name", None)
            self._tasks[fn] = step_task(fn, getattr(fn, "step_name", fn.__name__), **({"task_run_name": run_name} if run_name else {}))
        return self._tasks[fn]

    def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return self._task(fn)(*args, **kwargs)

    def map(self, fn: Callable[..., Any], calls: list[tuple]) -> list:
        futures = [self._task(fn).submit(*call) for call in calls]
        return [f.result() for f in futures]

    def submitter(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return self._task(fn).submit

    def dask_client(self) -> Any:
        """The Dask client of the running flow's task runner (``labelq audit --cluster``), or None on another task runner."""
        from prefect.context import FlowRunContext

        task_runner = getattr(FlowRunContext.get(), "task_runner", None)
        if task_runner is None or type(task_runner).__name__ != "DaskTaskRunner":
            return None
        return task_runner.client

    def run_info(self) -> dict:
        from prefect.runtime import flow_run

        return {"flow_run_id": str(flow_run.get_id()), "flow_run_name": flow_run.get_name()}
