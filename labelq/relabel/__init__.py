"""Re-labeling: issue kinds and corrections, label sets with a coverage guarantee, soft labels, human review,
training exports and localized (ReLabel) label maps."""

import sys

from ..kinds import KindRule, classify, noise_aware
from .label_sets import ConformalLabelSets, real_accuracy, soft_labels
from .run import RelabelConfig, RelabelResult, relabel

__all__ = ["ConformalLabelSets", "KindRule", "RelabelConfig", "RelabelResult", "classify", "noise_aware", "real_accuracy", "relabel", "soft_labels"]


class _CallablePackage(type(sys.modules[__name__])):
    """``labelq.relabel(name=...)`` is the documented entry point, but once anything imports this package
    (the review app, the benchmark report and the tests do), Python binds ``labelq.relabel`` to the package,
    not to the function: calling the package runs the function."""

    def __call__(self, config: RelabelConfig | None = None, **kwargs) -> RelabelResult:
        return relabel(config, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
