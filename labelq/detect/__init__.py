"""Detectors: each turns (labels, pred_probs, ...) into the long detections table, registered by name.

A detector returns a ``Detection``; ``detections_table`` gives it the contract's shape
(``id``, ``detector``, ``score`` (low = likely wrong, in [0, 1]), ``is_issue``, ``suggested_label``).
"""

from __future__ import annotations

from .confident_learning import ConfidentLearning, Detection, detections_table, find_label_issues

DETECTORS = {"confident_learning": ConfidentLearning}

__all__ = ["ConfidentLearning", "DETECTORS", "Detection", "detections_table", "find_label_issues"]
