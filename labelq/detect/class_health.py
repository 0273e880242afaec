"""Class-level health: imbalance, per-class label quality and overlapping classes.

From the rows' labels and confident learning's estimated joint ``P(given, true)`` (``noise.parquet``),
with cleanlab's own functions over that joint (``cleanlab.dataset``):

- **imbalance**: a class is under-represented when its share of the rows is below
  ``IMBALANCE_THRESHOLD / K`` (cleanlab Datalab's class-imbalance rule, which flags only the rarest
  class; here every class under the line is named);
- **per class**: rows and share; estimated label issues (rows given the class whose true class is
  another) and inverse label issues (rows of the class given another), their rates, and cleanlab's
  label quality score (1 - the label noise), ``rank_classes_by_label_quality``;
- **overlapping classes**: pairs whose rows are mistaken for each other most, both ways
  (``find_overlapping_classes``): the pairs to merge or to describe better to annotators;
- **overall**: cleanlab's ``overall_label_health_score`` (1 - the estimated share of wrong labels).
"""

from __future__ import annotations

from typing import Any

import numpy as np

IMBALANCE_THRESHOLD = 0.1
TOP_OVERLAPS = 10


def class_health(labels: np.ndarray, joint: np.ndarray | None, class_names: list[str]) -> dict[str, Any]:
    """The summary above. Without ``joint`` (no confident-learning estimate), only the imbalance part."""
    k = len(class_names)
    n = len(labels)
    counts = np.bincount(labels, minlength=k)
    share = counts / max(n, 1)
    line = IMBALANCE_THRESHOLD / k
    per_class: list[dict[str, Any]] = [
        {"label": i, "class_name": class_names[i], "rows": int(counts[i]), "share": float(share[i]), "imbalanced": bool(share[i] < line)} for i in range(k)
    ]
    out: dict[str, Any] = {"imbalance_threshold": line, "imbalanced_classes": [p["class_name"] for p in per_class if p["imbalanced"]], "per_class": per_class}
    if joint is None or n == 0:
        return out
    from cleanlab.dataset import find_overlapping_classes, overall_label_health_score, rank_classes_by_label_quality

    joint = np.asarray(joint, dtype=np.float64)
    ranked = rank_classes_by_label_quality(joint=joint, num_examples=n, class_names=class_names)
    for r in ranked.to_dict("records"):
        per_class[int(r["Class Index"])].update(
            {
                "label_issues": int(r["Label Issues"]),
                "inverse_label_issues": int(r["Inverse Label Issues"]),
                "label_noise": float(r["Label Noise"]),
                "inverse_label_noise": float(r["Inverse Label Noise"]),
                "label_quality": float(r["Label Quality Score"]),
            }
        )
    overlaps = find_overlapping_classes(joint=joint, num_examples=n, class_names=class_names)
    out["overlapping_classes"] = [
        {
            "class_a": r["Class Name A"],
            "class_b": r["Class Name B"],
            "overlapping_rows": int(r["Num Overlapping Examples"]),
            "joint_probability": float(r["Joint Probability"]),
        }
        for r in overlaps.to_dict("records")[:TOP_OVERLAPS]
        if r["Num Overlapping Examples"] > 0
    ]
    out["overall_label_health"] = float(overall_label_health_score(joint=joint, num_examples=n, verbose=False))
    return out
