"""The corrected-test-set benchmark report as a Prefect flow (``labelq report benchmark``)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from labelq.benchmark.report import benchmark_step
from labelq.flows.tasks import PrefectRunner


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
    return PrefectRunner().run(benchmark_step, name, predictions, store, version, verified, n_boot, seed, models)
