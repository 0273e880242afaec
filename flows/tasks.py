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
