"""The typed manifest of a published version: the one owner of ``manifest.json``'s shape.

A ``Manifest`` has the version's identity (filled in by ``Store.publish``), its two counts, and one
section per job that shaped it: ``audit``, ``judges``, ``relabel``, ``review``, ``label_maps`` and
``run``. ``to_json`` writes the on-disk layout, which the catalog's ``versions`` view, the history and
other tools read, and which versions published before this class share:

- the audit section's keys sit at the top level, every one present (null where it does not apply);
- the other sections are nested objects under their names;
- keys a section does not know (settings of a job, keys written by other code) are kept in its
  ``extra`` and written back in place, so nothing is lost when a version is derived from another.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

from . import schema as S


class Section:
    """A dataclass read from and written to a JSON object; unknown keys go to ``extra`` and back.
    ``SECTIONS``: fields that hold a section of their own (a nested JSON object)."""

    extra: dict[str, Any]
    SECTIONS: ClassVar[dict[str, type[Section]]] = {}

    @classmethod
    def from_json(cls, obj: dict | None) -> Self | None:
        if obj is None:
            return None
        known = {f.name for f in fields(cls)} - {"extra"}  # type: ignore[arg-type]
        own = {k: cls.SECTIONS[k].from_json(v) if k in cls.SECTIONS else v for k, v in obj.items() if k in known}
        return cls(**own, extra={k: v for k, v in obj.items() if k not in known})

    def to_json(self) -> dict[str, Any]:
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}  # type: ignore[arg-type]
        return {**self.extra, **{k: v.to_json() if isinstance(v, Section) else v for k, v in own.items()}}


@dataclass(frozen=True)
class NeighborSummary(Section):
    """The near-duplicate and outlier check's settings and counts (``labelq.detect.neighbors.check_neighbors``):
    the manifest's ``near_duplicates``, the report's summary and the history read it. Versions published
    before the outlier check lack the ``outlier_*`` fields (None)."""

    space: str | None = None
    dims: int | None = None
    distinct_contents: int | None = None
    median_nn_distance: float | None = None
    near_duplicate_radius: float | None = None
    near_duplicate_distance: float | None = None
    near_duplicate_rows: int | None = None
    near_duplicate_sets: int | None = None
    exact_duplicate_rows: int | None = None
    leaking_rows: int | None = None
    conflicting_rows: int | None = None
    outlier_iqr: float | None = None
    outlier_threshold: float | None = None  # None: too few rows for a rule
    outlier_rows: int | None = None
    seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditSection(Section):
    """How the rows were predicted and flagged (``pipeline.publish_step``)."""

    seed: int | None = None
    n_folds: int | None = None
    model: str | None = None
    model_config: dict | None = None
    filter_by: str | None = None
    auto_fix: dict | None = None
    num_label_issues_estimate: int | None = None
    out_of_sample_accuracy: float | None = None
    class_error_rate: list | None = None
    detectors: list[str] | None = None
    config: dict | None = None
    reliability: dict | None = None  # does the model beat the class prior? (``labelq.reliability``)
    near_duplicates: NeighborSummary | None = None  # the near-duplicate and outlier check (``labelq.detect.neighbors``); None: not checked
    tags_flagged: dict | None = None  # multi-label: the flagged tags, {"missing": n, "extra": n} (``labelq.detect.multilabel``)
    # --detector ensemble: the candidates' F1 and AP on errors planted in the data, and the one chosen (``labelq.detect.ensemble``)
    ensemble: dict | None = None
    # --detector margin: what it ranked by (the area under the margin of the training epochs, or the one-pass margin)
    margin: str | None = None
    # several annotators a row (--annotators): the consensus step's figures (labelq.crowd.crowd_audit)
    crowd: dict | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    SECTIONS: ClassVar[dict[str, type[Section]]] = {"near_duplicates": NeighborSummary}

    @property
    def reliable(self) -> bool:
        """False when the model was no better than the class prior (versions from before the check: True)."""
        return (self.reliability or {}).get("reliable", True)


@dataclass(frozen=True)
class JudgesSection(Section):
    """The LLM judges' per-judge statistics and how their votes were combined."""

    stats: list[dict] | None = None
    aggregation: str | None = None
    judged_rows: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RelabelSection(Section):
    """What ``relabel`` measured; its settings (``RelabelConfig.settings()``) are kept in ``extra``."""

    parent: str | None = None
    kinds: dict[str, int] | None = None
    n_calibration: int | None = None
    coverage_target: float | None = None
    coverage_measured: float | None = None
    n_coverage_rows: int | None = None
    mean_set_size: float | None = None
    mean_set_size_flagged: float | None = None
    thresholds: list | None = None
    judge_evidence: bool | None = None
    guarantee: dict | None = None  # --target-precision: the correction rule and its guarantee (``labelq.precision.FixRule``)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReviewSection(Section):
    """The review file applied to make this version."""

    file: str | None = None
    file_sha256: str | None = None
    format: str | None = None
    from_version: str | None = None
    n_reviews: int | None = None
    skipped: int | None = None
    changed: int | None = None
    reviewers: list[str] | None = None
    adjudicated: int | None = None  # rows a lead settled (the review app's --adjudicate)
    comments: int | None = None  # reviewers' comments published in review_comments.parquet
    guidelines: list[str] | None = None  # sha256 of each guidelines text the answers were given under
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LabelMapsSection(Section):
    """The settings of the label maps published with this version."""

    k: int | None = None
    grid: int | None = None
    n_folds: int | None = None
    seed: int | None = None
    epochs: int | None = None
    image_size: list[int] | None = None
    model: str | None = None
    scores: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSection(Section):
    """The orchestrator's run that published the version (empty in process)."""

    flow_run_id: str | None = None
    flow_run_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest(Section):
    """A version's manifest. Jobs build one with their sections; ``Store.publish`` fills in the identity."""

    # identity: written by the store
    name: str | None = None
    version: int | None = None
    parent_version: int | None = None
    derived_from: str | None = None
    created_at: str | None = None
    contract_version: int | None = None
    labelq_version: str | None = None
    rows: int | None = None
    class_names: list[str] | None = None
    label_mapping: dict | None = None
    modality: str | None = None
    inputs: list[str] | None = None
    source: str | None = None
    multi_label: bool | None = None  # True: each row's label is a list of tags (absent: one class a row)
    label_kind: str | None = None  # a registered kind of label other than the built-in ones (``labelq.labelkind``)
    content_hash: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    columns: list[str] | None = None  # the rows' columns in order (data/ and the group files together)
    # what the rows say
    n_label_issues: int | None = None
    n_corrected: int | None = None
    # where the corrected labels came from (labelq.schema.correction_counts): by_rule, by_review, at_audit, reviewed
    corrections: dict | None = None
    # one section per job
    audit: AuditSection = field(default_factory=AuditSection)
    judges: JudgesSection | None = None
    relabel: RelabelSection | None = None
    review: ReviewSection | None = None
    label_maps: LabelMapsSection | None = None
    run: RunSection = field(default_factory=RunSection)
    extra: dict[str, Any] = field(default_factory=dict)

    NESTED: ClassVar[dict[str, type[Section]]] = {
        "judges": JudgesSection,
        "relabel": RelabelSection,
        "review": ReviewSection,
        "label_maps": LabelMapsSection,
        "run": RunSection,
    }
    CHECKSUM: ClassVar[str] = "manifest_sha256"  # the store's checksum over the other keys; not part of the content

    @classmethod
    def from_json(cls, obj: dict | None) -> Self | None:
        if obj is None:
            return None
        obj = {k: v for k, v in obj.items() if k != cls.CHECKSUM}
        audit_keys = {f.name for f in fields(AuditSection)} - {"extra"}
        nested = {key: section.from_json(obj.pop(key, None)) for key, section in cls.NESTED.items()}
        audit = AuditSection.from_json({k: obj.pop(k) for k in list(obj) if k in audit_keys})
        top = super().from_json(obj)
        return dataclasses.replace(top, audit=audit, **{k: v for k, v in nested.items() if v is not None})

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("extra", "audit", *self.NESTED)}
        if out["label_kind"] is None:  # the built-in kinds are known by multi_label
            del out["label_kind"]
        out.update({key: None if getattr(self, key) is None else getattr(self, key).to_json() for key in self.NESTED})
        return {**self.extra, **self.audit.to_json(), **out}

    @property
    def kind_name(self) -> str:
        """The version's kind of label (``labelq.labelkind``), as ``ExamplesInfo.kind_name``."""
        return S.kind_name(self.label_kind, self.multi_label)

    def derive(self, **changes: Any) -> Manifest:
        """The content of a version derived from this one: every section carried over except the
        review (which describes how *this* version was made) and the run; ``changes`` replace sections."""
        return dataclasses.replace(self, **{"review": None, "run": RunSection(), **changes})
