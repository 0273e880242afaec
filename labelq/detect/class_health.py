"""Class-level health: imbalance, per-class label quality and overlapping classes.

From the rows' labels and confident learning's estimated joint ``P(given, true)`` (``noise.parquet``),
with the formulas of cleanlab's functions over that joint (``cleanlab.dataset``), in numpy: importing
cleanlab and pandas for a K x K matrix cost an audit of given pred_probs more time than all of its
confident learning (``bench/scale.py``); ``tests/test_class_health.py`` checks them against cleanlab's:

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
    joint = np.asarray(joint, dtype=np.float64)
    given, true, diagonal = joint.sum(axis=1), joint.sum(axis=0), joint.diagonal()
    noise = (given - diagonal) / np.clip(given, 1e-6, None)  # rank_classes_by_label_quality: p(true != k | given = k)
    inverse = (true - diagonal) / np.clip(true, 1e-6, None)
    for i in range(k):
        per_class[i].update(
            {
                "label_issues": int(np.round((given[i] - diagonal[i]) * n)),
                "inverse_label_issues": int(np.round((true[i] - diagonal[i]) * n)),
                "label_noise": float(noise[i]),
                "inverse_label_noise": float(inverse[i]),
                "label_quality": float(1 - noise[i]),
            }
        )
    both = np.triu(joint, 1) + np.tril(joint, -1).T  # find_overlapping_classes: each pair's joint probability, both ways
    a, b = np.triu_indices(k, 1)
    order = np.argsort(-both[a, b], kind="stable")
    out["overlapping_classes"] = [
        {
            "class_a": class_names[a[j]],
            "class_b": class_names[b[j]],
            "overlapping_rows": int(np.round(both[a[j], b[j]] * n)),
            "joint_probability": float(both[a[j], b[j]]),
        }
        for j in order[:TOP_OVERLAPS]
        if np.round(both[a[j], b[j]] * n) > 0
    ]
    out["overall_label_health"] = float(joint.trace())  # overall_label_health_score from the joint
    return out
