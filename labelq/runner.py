"""How a job's steps run. Each job (audit, relabel, review, label maps, benchmark report) is written once,
as a function of its inputs and a runner, and the runner decides where each step runs:

- ``InProcess()`` calls each step here (``--no-prefect`` and the Python API);
- ``labelq.flows.tasks.PrefectRunner()`` runs each step as a Prefect task (retries, parallel folds and
  judge batches on the flow's task runner, the run recorded by the Prefect API).

A step is a plain function; ``step(name)`` gives it the name its Prefect task carries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


def step(name: str, run_name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Name a step (``run_name``: a template for each run's name, e.g. ``"fold-{fold}"``)."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.step_name = name  # type: ignore[attr-defined]
        fn.step_run_name = run_name  # type: ignore[attr-defined]
        return fn

    return deco


class Runner(Protocol):
    def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run one step and return its result."""

    def map(self, fn: Callable[..., Any], calls: list[tuple]) -> list:
        """Run ``fn(*call)`` for every call (in parallel where the runner can) and return the results in order."""

    def submitter(self, fn: Callable[..., Any]) -> Callable[..., Any] | None:
        """A ``submit(*args)`` that returns a future with ``.result()``, for steps a job hands out itself (judge batches); None: call them here."""

    def run_info(self) -> dict:
        """What the manifest records about this run (the Prefect flow run), empty in process."""

    def dask_client(self) -> Any:
        """A Dask client whose workers can take steps' passes (``labelq audit --cluster``), or None."""


class InProcess:
    """Every step in this process, one after the other."""

    def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    def map(self, fn: Callable[..., Any], calls: list[tuple]) -> list:
        from .progress import progress

        out = []
        with progress(len(calls), getattr(fn, "step_name", fn.__name__), unit="steps") as bar:  # each step logs its own lines
            for call in calls:
                out.append(fn(*call))
                bar.update()
        return out

    def submitter(self, fn: Callable[..., Any]) -> None:
        return None

    def run_info(self) -> dict:
        return {}

    def dask_client(self) -> None:
        return None
