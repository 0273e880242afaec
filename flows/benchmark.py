"""The corrected-test-set benchmark report as a Prefect flow (``labelq report benchmark``)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from labelq.benchmark.report import benchmark_step

report = task(benchmark_step, name="benchmark-report", cache_policy=NO_CACHE)


@flow(name="labelq-benchmark-report", validate_parameters=False)
def benchmark_flow(
    name: str,
    predictions: str | None = None,
    store: str | None = None,
    version: int | str | None = None,
    verified: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    models: str | None = None,
) -> dict[str, Path]:
    """Compare models on the corrected labels of ``name``'s test-set version; writes HTML, Markdown and JSON."""
    return report(name, predictions, store, version, verified, n_boot, seed, models)
