"""Re-labeling: issue kinds and corrections, label sets with a coverage guarantee, soft labels, human review,
training exports and localized (ReLabel) label maps."""

from .kinds import KindRule, classify, noise_aware
from .label_sets import ConformalLabelSets, real_accuracy, soft_labels
from .run import RelabelConfig, RelabelResult, relabel

__all__ = ["ConformalLabelSets", "KindRule", "RelabelConfig", "RelabelResult", "classify", "noise_aware", "real_accuracy", "relabel", "soft_labels"]
