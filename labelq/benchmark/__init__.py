"""Corrected-test-set benchmark reports: accuracies on original vs corrected labels with bootstrap intervals,
rankings and Kendall's tau, the prevalence analysis, and a design-based estimate of the label-error rate."""

from .error_rate import ErrorRateEstimate, estimate_error_rate, rows_needed
from .metrics import CorrectedLabels, accuracy_table, prevalence_curve, rankings, swap_points
from .report import corrected_labels, read_predictions, write_benchmark_report

__all__ = [
    "ErrorRateEstimate",
    "CorrectedLabels",
    "accuracy_table",
    "estimate_error_rate",
    "prevalence_curve",
    "rankings",
    "read_predictions",
    "rows_needed",
    "swap_points",
    "corrected_labels",
    "write_benchmark_report",
]
