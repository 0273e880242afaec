"""Re-labeling as Prefect flows: ``relabel_flow`` (kinds, corrections, label sets, soft labels),
``review_flow`` (apply a person's reviews) and ``label_maps_flow`` (localized ReLabel label maps). Each publishes a new version of a published dataset.

The tasks wrap the plain steps of ``labelq.relabel``; as in the audit flow, values pass in memory and
Prefect's result cache is off (``NO_CACHE``).
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from labelq.flows.tasks import step_task
from labelq.relabel import localized
from labelq.relabel import review as review_steps
from labelq.relabel import run as steps
from labelq.relabel.run import RelabelConfig, RelabelResult

load = step_task(steps.load_step, "load-version")
relabel = step_task(steps.relabel_step, "relabel")
publish = step_task(steps.publish_step, "publish")
report = step_task(steps.report_step, "report")
read_review = step_task(review_steps.read_step, "read-review")
apply_review = step_task(review_steps.apply_step, "apply-review")
publish_review = step_task(review_steps.publish_step, "publish")
label_maps = step_task(localized.label_maps_step, "label-maps")
publish_derived = step_task(steps.publish_derived, "publish")


def _run() -> dict:
    return {"flow_run_id": str(flow_run.get_id()), "flow_run_name": flow_run.get_name()}


@flow(name="labelq-relabel", validate_parameters=False)
def relabel_flow(name: str, store: str | None = None, **options: Any) -> RelabelResult:
    """Re-label the latest (or ``version=``) version of ``name``; ``options`` are ``RelabelConfig`` fields."""
    cfg = RelabelConfig(name=name, store=store, **options)
    parent = load(cfg)
    table, manifest = relabel(cfg, parent)
    version = publish(cfg, parent, table, manifest, _run())
    report(version)
    return steps.result_of(version, parent, manifest)


@flow(name="labelq-review", validate_parameters=False)
def review_flow(name: str, path: str, store: str | None = None, fmt: str | None = None) -> review_steps.ReviewResult:
    """Apply the reviews in ``path`` (Label Studio export JSON or the review CSV) to ``name``."""
    reviews = read_review(name, path, store, fmt)
    table, manifest, parent = apply_review(reviews, store)
    version = publish_review(reviews, parent, table, manifest, store, _run())
    report(version)
    return review_steps.ReviewResult(version, parent, reviews.n, manifest["review"]["changed"])


@flow(name="labelq-label-maps", validate_parameters=False)
def label_maps_flow(name: str, store: str | None = None, version: int | str | None = None, **settings: Any):
    """Cross-validated label maps for an image dataset, published as a new version (``label_maps.parquet``)."""
    from labelq.store import Store

    st = Store(store)
    parent = st.version(name, version)
    table, manifest = label_maps(parent, **settings)
    version = publish_derived(st, parent, parent.read(), manifest, _run(), {"label_maps": table})
    report(version)
    return version
