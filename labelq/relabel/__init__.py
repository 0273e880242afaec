"""Re-labeling: label sets with a coverage guarantee, soft labels, and multi-label-aware accuracy."""

from .label_sets import ConformalLabelSets, real_accuracy, soft_labels

__all__ = ["ConformalLabelSets", "real_accuracy", "soft_labels"]
