"""Re-labeling as Prefect flows: ``relabel_flow`` (kinds, corrections, label sets, soft labels),
``review_flow`` (apply a person's reviews) and ``label_maps_flow`` (localized ReLabel label maps). Each publishes a new version of a published dataset.

The tasks wrap the plain steps of ``labelq.relabel``; as in the audit flow, values pass in memory and
Prefect's result cache is off (``NO_CACHE``).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from labelq.flows.tasks import PrefectRunner
from labelq.relabel import localized
from labelq.relabel import review as review_steps
from labelq.relabel import run as steps
from labelq.relabel.run import RelabelConfig, RelabelResult


@flow(name="labelq-relabel", validate_parameters=False)
def relabel_flow(name: str, store: str | None = None, **options: Any) -> RelabelResult:
    """Re-label the latest (or ``version=``) version of ``name``; ``options`` are ``RelabelConfig`` fields."""
    return steps.relabel_job(RelabelConfig(name=name, store=store, **options), PrefectRunner())


@flow(name="labelq-review", validate_parameters=False)
def review_flow(name: str, path: str, store: str | None = None, fmt: str | None = None) -> review_steps.ReviewResult:
    """Apply the reviews in ``path`` (Label Studio export JSON or the review CSV) to ``name``."""
    return review_steps.review_job(name, path, store, fmt, PrefectRunner())


@flow(name="labelq-label-maps", validate_parameters=False)
def label_maps_flow(name: str, store: str | None = None, version: int | str | None = None, **settings: Any):
    """Cross-validated label maps for an image dataset, published as a new version (``label_maps.parquet``)."""
    return localized.label_maps_job(name, store, version, settings, PrefectRunner())
