"""Detectors: each turns (labels, pred_probs, features, ...) into the long detections table, registered by name.

A detector reads a ``DetectContext`` (``context.py``) and declares what it ``needs``: confident learning the
pred_probs, ``knn_vote`` (``knn_vote.py``) the feature space; ``ensemble_cl`` (``ensemble_cl.py``) averages
several models' pred_probs, ``ensemble`` (``ensemble.py``) picks among them by planted errors, ``margin``
(``margin.py``) ranks by the area under the margin of the models' training epochs, ``judges`` (``judges.py``)
by the LLM judges' probability that the label is wrong.

A detector returns a ``Detection``; ``detections_table`` gives it the contract's shape
(``id``, ``detector``, ``score`` (low = likely wrong, in [0, 1]), ``is_issue``, ``suggested_label``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..errors import InputError
from ..options import option
from .confident_learning import ConfidentLearning, Detection, detections_table, find_label_issues, noise_table
from .context import DetectContext, run_detector
from .ensemble import Ensemble
from .ensemble_cl import EnsembleCL
from .judges import Judges
from .knn_vote import KnnVote
from .margin import Margin

# name -> a class (or factory) whose instances have ``detect(labels, pred_probs) -> Detection``
DETECTORS: dict[str, Callable[..., Any]] = {}


def register_detector(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a detector class under ``name`` (``labelq audit --detector NAME``)."""

    def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
        DETECTORS[name] = factory
        return factory

    return deco


def make_detector(name: str, **options: Any) -> Any:
    """The registered detector ``name``, built with those of ``options`` its constructor takes (validated there)."""
    if name not in DETECTORS:
        raise InputError(f"unknown detector {name!r}", f"use one of {sorted(DETECTORS)}")
    factory = DETECTORS[name]
    accepted = inspect.signature(factory).parameters
    return factory(**{k: v for k, v in options.items() if k in accepted})


register_detector("confident_learning")(ConfidentLearning)
register_detector("knn_vote")(KnnVote)
register_detector("ensemble_cl")(EnsembleCL)
register_detector("ensemble")(Ensemble)
register_detector("margin")(Margin)
register_detector("judges")(Judges)


AUTO = "auto"


@dataclass
class DetectOptions:
    """Which registered detector flags the rows, and its options (checked when the config is made). ``auto`` (the
    default) is ``ensemble`` for images with one class a row whose pixels the audit reads and whose model it trains,
    where it flagged at least as well as confident learning in every cell of ``bench/detectors.py``, and
    ``confident_learning`` for everything else, given pred_probs included (``resolve``)."""

    detector: str = option(
        "--detector",
        default=AUTO,
        show_default=True,
        help="Registered detector that flags the rows (labelq.detect.register_detector); auto: ensemble for images with one class a row "
        "and labelq's model, confident_learning for the rest.",
    )
    filter_by: str = option("--filter-by", default="prune_by_noise_rate", show_default=True, help="cleanlab find_label_issues filter.")

    def __post_init__(self) -> None:
        self.impl = make_detector("confident_learning" if self.detector == AUTO else self.detector, filter_by=self.filter_by)

    def resolve(self, kind: str, modality: str, features: bool, trained: bool) -> DetectOptions:
        """These options with ``auto`` made the detector for a ``kind`` of label (``LabelKind.name``) and ``modality``,
        where the audit has the rows' ``features`` (the ensemble's neighbour vote reads them) and ``trained`` its own
        model (the bench measured the ensemble on labelq's models; given pred_probs keep confident learning)."""
        if self.detector != AUTO:
            return self
        ensemble = kind == "single" and modality == "image" and features and trained
        return replace(self, detector="ensemble" if ensemble else "confident_learning")


__all__ = [
    "ConfidentLearning",
    "DETECTORS",
    "DetectContext",
    "Ensemble",
    "EnsembleCL",
    "Judges",
    "KnnVote",
    "Margin",
    "run_detector",
    "DetectOptions",
    "Detection",
    "detections_table",
    "find_label_issues",
    "make_detector",
    "noise_table",
    "register_detector",
]
